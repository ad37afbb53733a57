"""The simulator's network: seeded loss, duplication, delay, reordering and cuts.

Time is logical: a message sent at tick ``t`` with delay ``d`` becomes due at
``t + d`` (``d`` in ``[0, max_delay]``). Messages due at the same tick come out
in send order (FIFO, like one stream per link), except that each message is,
with probability ``reorder``, overtaken: it goes behind the others due that
tick in a random order. Random delays reorder across ticks too.

A partition is a set of *directed* cut links: ``(a, b)`` in ``cut`` drops
``a -> b`` while ``b -> a`` may still work (asymmetric partitions). A cut is
checked both when a message is sent and when it becomes due, so a partition
that forms while a message is in flight also eats it.

The network never inspects messages beyond ``frm`` and ``to``: it is a model of
links, not of Raft.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from typing import Any, Protocol


class Addressed(Protocol):
    """Anything with a sender and a receiver (every core message)."""

    @property
    def frm(self) -> int: ...

    @property
    def to(self) -> int: ...


class Network:
    """In-flight messages with seeded faults; see the module docstring."""

    __slots__ = (
        "_heap",
        "_seq",
        "cut",
        "delivered",
        "dropped",
        "dup",
        "duplicated",
        "loss",
        "max_delay",
        "reorder",
        "rng",
        "sent",
    )

    def __init__(
        self,
        rng: random.Random,
        *,
        loss: float = 0.0,
        dup: float = 0.0,
        max_delay: int = 0,
        reorder: float = 0.0,
    ) -> None:
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        if not 0.0 <= reorder <= 1.0:
            raise ValueError("reorder must be a probability")
        self.rng = rng
        self.loss = loss
        self.dup = dup
        self.max_delay = max_delay
        self.reorder = reorder
        self.cut: set[tuple[int, int]] = set()
        # (due tick, tie-break, send sequence, message): the sequence keeps
        # heap comparisons away from the messages themselves.
        self._heap: list[tuple[int, float, int, Any]] = []
        self._seq = 0
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0
        self.delivered = 0

    # --- faults ------------------------------------------------------------------

    def set_faults(self, *, loss: float, dup: float, max_delay: int) -> None:
        """Change the loss and duplication probabilities and the delay bound."""
        if not (0.0 <= loss < 1.0 and 0.0 <= dup < 1.0 and max_delay >= 0):
            raise ValueError("loss and dup must be in [0, 1) and max_delay >= 0")
        self.loss = loss
        self.dup = dup
        self.max_delay = max_delay

    def cut_link(self, frm: int, to: int) -> None:
        """Drop every message ``frm -> to`` (one direction only)."""
        self.cut.add((frm, to))

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every link between different groups, both ways."""
        sets = [frozenset(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def isolate(self, node: int, others: Iterable[int], *, inbound: bool = True,
                outbound: bool = True) -> None:
        """Cut ``node`` off from ``others`` (inbound, outbound or both)."""
        for o in others:
            if o == node:
                continue
            if outbound:
                self.cut.add((node, o))
            if inbound:
                self.cut.add((o, node))

    def heal(self) -> None:
        """Remove every cut."""
        self.cut.clear()

    # --- traffic -------------------------------------------------------------------

    def send(self, msg: Addressed, now: int) -> int:
        """Queue ``msg`` sent at tick ``now``; returns how many copies will travel (0: lost)."""
        self.sent += 1
        rng = self.rng
        cut = self.cut
        if (cut and (msg.frm, msg.to) in cut) or (self.loss and rng.random() < self.loss):
            self.dropped += 1
            return 0
        copies = 1
        if self.dup and rng.random() < self.dup:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            # int(random() * k) instead of randint: same distribution, a third of the cost.
            due = now + int(rng.random() * (self.max_delay + 1)) if self.max_delay else now
            self._seq += 1
            # FIFO messages tie at 0.0 (send order); overtaken ones go behind, shuffled.
            tie = rng.random() + 1.0 if self.reorder and rng.random() < self.reorder else 0.0
            heapq.heappush(self._heap, (due, tie, self._seq, msg))
        return copies

    def has_due(self, now: int) -> bool:
        """Whether some message is due at or before ``now``."""
        return bool(self._heap) and self._heap[0][0] <= now

    def pop_due(self, now: int) -> tuple[list[Any], list[Any]]:
        """Messages due at or before ``now``: (to deliver, cut while in flight)."""
        heap = self._heap
        out: list[Any] = []
        lost: list[Any] = []
        cut = self.cut
        while heap and heap[0][0] <= now:
            msg = heapq.heappop(heap)[3]
            if cut and (msg.frm, msg.to) in cut:
                self.dropped += 1
                lost.append(msg)
            else:
                self.delivered += 1
                out.append(msg)
        return out, lost

    def in_flight(self) -> int:
        """How many message copies are still travelling."""
        return len(self._heap)

    def carries(self, frm: int, to: int) -> bool:
        """Whether a message from ``frm`` to ``to`` is still travelling."""
        return any(m.frm == frm and m.to == to for *_, m in self._heap)
