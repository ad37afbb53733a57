"""A linearizability checker for per-key registers (Wing & Gong search, Lowe's memoization).

The history is split per key (a register per key is a P-compositional model:
the whole history is linearizable iff every key's sub-history is). For each
key the search keeps the not-yet-linearized operations in a doubly linked list
of call and return events ordered by time, and repeatedly tries to linearize
a call that comes before the first return still in the list:

- if the model accepts it and the pair (set of linearized operations, state)
  has not been seen before, the call and its return are lifted out of the list
  and the search restarts from the front;
- reaching a return event means that operation had to be linearized already:
  the search backtracks by popping the last linearized call and trying the
  next candidate after it.

The history is linearizable when every *completed* operation has been
linearized. Operations whose outcome is unknown (``complete is None``) have no
return event: they may be linearized anywhere after their invocation or never,
which is exactly "a write whose answer was lost may or may not have happened".

The memo of visited (bitmask, state) pairs bounds the work by the number of
distinct configurations instead of the number of interleavings. A step and
wall-clock budget turns a pathological history into :data:`Verdict.UNKNOWN`
instead of a hang.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tests.lin.model import Operation, OpKind, State, step

__all__ = ["DEFAULT_MAX_STEPS", "CheckResult", "KeyResult", "Verdict", "check_history", "check_key"]

#: Search steps per key before giving up. Each step may add one memo entry,
#: so this also bounds the memo's memory (roughly 1 GB at worst).
DEFAULT_MAX_STEPS = 5_000_000


class Verdict(enum.Enum):
    """The outcome of a check."""

    LINEARIZABLE = "linearizable"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"  # the budget ran out before the search finished


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key and, when illegal, what went wrong.

    ``longest`` is the longest linearization prefix the search found (in
    linearization order), ``state`` the register's value after it, and
    ``blocked`` the completed operation that could not be placed after it.
    """

    key: bytes
    verdict: Verdict
    operations: int
    steps: int
    longest: tuple[Operation, ...] = ()
    state: State = None
    blocked: Operation | None = None

    def explain(self, limit: int = 8) -> str:
        """A short human explanation (used in assertion messages)."""
        head = f"key {self.key!r}: {self.verdict.value} ({self.operations} ops, {self.steps} steps)"
        if self.verdict is not Verdict.ILLEGAL:
            return head
        lines = [head, f"  longest linearizable prefix: {len(self.longest)} ops, ending with:"]
        lines += [f"    {op.describe()}" for op in self.longest[-limit:]]
        lines.append(f"  state after it: {self.state!r}")
        if self.blocked is not None:
            lines.append(f"  cannot linearize: {self.blocked.describe()}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict for a whole history: illegal if any key is, else unknown if any key is."""

    verdict: Verdict
    keys: Mapping[bytes, KeyResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the history was proven linearizable."""
        return self.verdict is Verdict.LINEARIZABLE

    def explain(self) -> str:
        """One paragraph per key that is not linearizable (or every key if all are)."""
        bad = [r for r in self.keys.values() if r.verdict is not Verdict.LINEARIZABLE]
        shown = bad or list(self.keys.values())
        return "\n".join([f"history is {self.verdict.value}"] + [r.explain() for r in shown])


class _Event:
    """A node of the doubly linked event list (a call or a return)."""

    __slots__ = ("bit", "is_call", "match", "next", "op", "prev")

    def __init__(self, op: Operation, bit: int, is_call: bool) -> None:
        self.op = op
        self.bit = bit
        self.is_call = is_call
        # For a call: its return event, or None when the outcome is unknown.
        self.match: _Event | None = None
        self.prev: _Event | None = None
        self.next: _Event | None = None


_SENTINEL = Operation(0, OpKind.GET, b"", 0, 0)


def _build_list(ops: list[Operation]) -> _Event:
    """Return the head sentinel of the time-ordered event list for ``ops``.

    At equal timestamps calls sort before returns, so touching intervals count
    as concurrent (the permissive choice: it never invents a violation).
    """
    keyed: list[tuple[int, int, int, _Event]] = []
    for i, op in enumerate(ops):
        call = _Event(op, 1 << i, True)
        keyed.append((op.invoke, 0, i, call))
        if op.complete is not None:
            ret = _Event(op, 1 << i, False)
            call.match = ret
            keyed.append((op.complete, 1, i, ret))
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    head = _Event(_SENTINEL, 0, False)
    prev = head
    for _, _, _, ev in keyed:
        prev.next = ev
        ev.prev = prev
        prev = ev
    return head


def _lift(call: _Event) -> None:
    """Unlink a call and its return (if any) from the list."""
    assert call.prev is not None
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    if ret is not None:
        assert ret.prev is not None
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev


def _unlift(call: _Event) -> None:
    """Undo :func:`_lift` (in reverse order, so the neighbours are exactly restored)."""
    ret = call.match
    if ret is not None:
        assert ret.prev is not None
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
    assert call.prev is not None
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def check_key(
    key: bytes,
    ops: Iterable[Operation],
    *,
    initial: State = None,
    deadline: float | None = None,
    max_steps: int | None = DEFAULT_MAX_STEPS,
) -> KeyResult:
    """Check the sub-history of one key.

    ``deadline`` is a :func:`time.monotonic` instant and ``max_steps`` a count
    of search steps; when either runs out the verdict is UNKNOWN.
    """
    # A get whose answer never came constrains nothing: drop it.
    kept = [op for op in ops if not (op.kind is OpKind.GET and op.complete is None)]
    for op in kept:
        if op.key != key:
            raise ValueError(f"operation on key {op.key!r} passed to check_key({key!r})")
    head = _build_list(kept)
    remaining = sum(1 for op in kept if op.complete is not None)
    state: State = initial
    linearized = 0
    seen: set[tuple[int, State]] = set()
    stack: list[tuple[_Event, State]] = []
    # Diagnostics: the deepest stack reached, captured (once per new depth) at
    # the first backtrack from it, so a passing search never copies the stack.
    peak, peak_recorded = 0, True
    best: tuple[_Event, ...] = ()
    best_state: State = initial
    blocked: Operation | None = None
    steps = 0
    entry = head.next
    while remaining:
        steps += 1
        if not steps & 0x3FF and (
            (max_steps is not None and steps > max_steps)
            or (deadline is not None and time.monotonic() > deadline)
        ):
            return KeyResult(key, Verdict.UNKNOWN, len(kept), steps)
        # Invariant: a completed operation is still unlinearized, so its return
        # event lies ahead of us in the list; we reach it before the end.
        assert entry is not None
        if entry.is_call:
            legal, new_state = step(state, entry.op)
            if legal:
                bits = linearized | entry.bit
                memo = (bits, new_state)
                if memo not in seen:
                    seen.add(memo)
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    if entry.match is not None:
                        remaining -= 1
                    _lift(entry)
                    if len(stack) > peak:
                        peak, peak_recorded = len(stack), False
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return event: its operation had to be linearized by now. Backtrack.
        if not peak_recorded and len(stack) == peak:
            best, best_state, blocked = tuple(e for e, _ in stack), state, entry.op
            peak_recorded = True
        if not stack:
            if not best:
                blocked = entry.op
            return _illegal(key, kept, steps, best, best_state, blocked)
        call, state = stack.pop()
        linearized &= ~call.bit
        if call.match is not None:
            remaining += 1
        _unlift(call)
        entry = call.next
    return KeyResult(key, Verdict.LINEARIZABLE, len(kept), steps)


def _illegal(
    key: bytes,
    kept: list[Operation],
    steps: int,
    best: tuple[_Event, ...],
    best_state: State,
    blocked: Operation | None,
) -> KeyResult:
    longest = tuple(e.op for e in best)
    return KeyResult(key, Verdict.ILLEGAL, len(kept), steps, longest, best_state, blocked)


def check_history(
    ops: Iterable[Operation],
    *,
    initial: Mapping[bytes, bytes] | None = None,
    timeout: float | None = 60.0,
    max_steps: int | None = DEFAULT_MAX_STEPS,
) -> CheckResult:
    """Check a whole history: partition by key and check each key.

    ``initial`` gives keys that exist before the history starts (others are
    absent). ``timeout`` (seconds) bounds the whole check and ``max_steps`` each
    key's search; either running out makes the verdict UNKNOWN unless some key
    is already proven ILLEGAL.
    """
    initial = dict(initial or {})
    deadline = None if timeout is None else time.monotonic() + timeout
    by_key: dict[bytes, list[Operation]] = {}
    for op in ops:
        if not isinstance(op, Operation):
            raise TypeError(f"ops must hold Operation, not {type(op).__name__}")
        by_key.setdefault(op.key, []).append(op)
    results: dict[bytes, KeyResult] = {}
    for key in sorted(by_key):
        results[key] = check_key(
            key, by_key[key], initial=initial.get(key), deadline=deadline, max_steps=max_steps
        )
    verdicts = {r.verdict for r in results.values()}
    if Verdict.ILLEGAL in verdicts:
        verdict = Verdict.ILLEGAL
    elif Verdict.UNKNOWN in verdicts:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.LINEARIZABLE
    return CheckResult(verdict, results)
