"""ReadIndex bookkeeping on the leader (Raft thesis §6.4).

A read request records the leader's commit index at the time it arrived. The
leader then broadcasts a heartbeat carrying the request's ``context``; once a
quorum of voters (the leader included) has echoed that context, the leader
knows it was still the leader when the read arrived, so every request queued
up to and including that one may be served at its recorded index.

Requests are kept in arrival order; contexts are unique while pending (a
duplicate context joins the pending request instead of starting a new one).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from nexus_raft.consensus.core.quorum import majority

__all__ = ["PendingRead", "ReadOnly"]


@dataclass(slots=True)
class PendingRead:
    """One read waiting for its heartbeat round; ``requesters`` are node ids."""

    index: int
    context: bytes
    requesters: list[int]
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """The queue of reads waiting for leadership confirmation."""

    __slots__ = ("_pending", "_queue")

    def __init__(self) -> None:
        self._pending: dict[bytes, PendingRead] = {}
        self._queue: list[bytes] = []

    def __len__(self) -> int:
        return len(self._queue)

    def add_request(self, index: int, context: bytes, requester: int) -> bool:
        """Queue a read; False when the context was already pending (requester joined)."""
        pending = self._pending.get(context)
        if pending is not None:
            pending.requesters.append(requester)
            return False
        self._pending[context] = PendingRead(index, context, [requester])
        self._queue.append(context)
        return True

    def recv_ack(self, voter: int, context: bytes) -> set[int] | None:
        """Record that ``voter`` echoed ``context``; returns its ack set (None if unknown)."""
        pending = self._pending.get(context)
        if pending is None:
            return None
        pending.acks.add(voter)
        return pending.acks

    def confirmed(self, context: bytes, voters: Collection[int]) -> bool:
        """Whether a quorum of ``voters`` acknowledged the round of ``context``."""
        pending = self._pending.get(context)
        if pending is None:
            return False
        return sum(1 for v in voters if v in pending.acks) >= majority(len(voters))

    def advance(self, context: bytes) -> list[PendingRead]:
        """Release every read up to and including ``context`` (all were confirmed by it)."""
        if context not in self._pending:
            return []
        out: list[PendingRead] = []
        n = 0
        for n, ctx in enumerate(self._queue, 1):  # noqa: B007
            out.append(self._pending.pop(ctx))
            if ctx == context:
                break
        del self._queue[:n]
        return out

    def last_pending_context(self) -> bytes | None:
        """Context of the newest pending read (heartbeats carry it)."""
        return self._queue[-1] if self._queue else None

    def drain(self) -> list[PendingRead]:
        """Remove and return every pending read (the leader stepped down)."""
        out = [self._pending[c] for c in self._queue]
        self._pending.clear()
        self._queue.clear()
        return out
