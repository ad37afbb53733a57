"""What the node simulator watches, and the safety rules it checks as things happen.

Two taps, neither of which needs a hook in the code under test:

- the disk tap (:class:`DiskTap`) decodes every write a member makes to its
  Raft trees (``raft.log``, ``raft.meta``) from the simulated disk. A write
  counts as persisted only once a synced write of that member follows it:
  that is the moment the node's save returns and the node acts on it
  (sends votes, acknowledges appends). Persisted entries and hard states
  feed the core simulator's :class:`~tests.sim.checker.Checker`: log
  matching, one vote per term, terms and commits never going back, and on
  restart the durable vote, term and commit (so a power loss that undoes a
  persisted Ready shows up here);
- :class:`ObservedKV` is the real ``KVStateMachine`` reporting each applied
  command and its result, for state machine safety (every member applied
  the same command at each index *with the same result*, which also catches
  a member applying onto the wrong state) and exactly-once sessions (a
  second copy of a client's ``(client_id, seq)`` must answer the first
  copy's result, or be refused as stale).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus_raft.consensus.core.messages import Entry
from nexus_raft.consensus.log.codec import (
    HARD_KEY,
    decode_entry,
    decode_hard_state,
    decode_index,
)
from nexus_raft.consensus.log.store import LOG_TREE, META_TREE
from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.commands import (
    GROUP_MAGIC,
    KVCommand,
    KVResult,
    ResultCode,
    split_group,
    split_group_result,
)
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage._layout import CATALOG_PREFIX
from tests.sim.checker import Checker, Violation

__all__ = ["DiskTap", "ObservedKV", "Observer", "Violation"]

_LOG_NAME = CATALOG_PREFIX + LOG_TREE.encode()
_META_NAME = CATALOG_PREFIX + META_TREE.encode()
_NO_EFFECT = (ResultCode.STALE, ResultCode.ALREADY_APPLIED)


@dataclass
class DiskTap:
    """One member's view from its disk: persisted log terms and the writes since the last sync."""

    member: int
    log_prefix: bytes | None = None
    meta_prefix: bytes | None = None
    log: dict[int, int] = field(default_factory=dict)  # persisted index -> term
    last: int = 0
    pending: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    # Writes not yet synced when the process died: they may or may not have survived.
    maybe: dict[int, int | None] = field(default_factory=dict)

    def pending_terms(self) -> dict[int, int | None]:
        """index -> term (None: deleted) written since the last sync."""
        out: dict[int, int | None] = {}
        for key, value in self.pending:
            if self.log_prefix is not None and key[:4] == self.log_prefix:
                index = decode_index(key[4:])
                out[index] = None if value is None else decode_entry(index, value).term
        return out


class Observer:
    """Every check of one seed; the first broken rule raises :class:`Violation`."""

    def __init__(self, stats: Counter[str], hit: Callable[[str], None],
                 violate: Callable[[Violation], None]) -> None:
        self.core = Checker()
        self.stats = stats
        self.hit = hit
        # Checks fed from inside a member's code report here instead of raising
        # into it (its ``except Exception`` handlers would swallow the verdict).
        self.violate = violate
        self.taps: dict[int, DiskTap] = {}
        self.applied_at: dict[int, tuple[bytes, bytes, int]] = {}
        self.sessions: dict[tuple[int, int], tuple[bytes, int]] = {}
        self.max_applied = 0

    # --- the disk tap ---------------------------------------------------------------------

    def tap(self, member: int) -> Callable[[str, Sequence[tuple[bytes, bytes | None]], bool], None]:
        """The disk observer of ``member``'s store."""
        tap = self.taps.setdefault(member, DiskTap(member))

        def observe(path: str, ops: Sequence[tuple[bytes, bytes | None]], synced: bool) -> None:
            for key, value in ops:
                if key[:4] == b"\0\0\0\0":
                    if key == _LOG_NAME and value is not None:
                        tap.log_prefix = value
                    elif key == _META_NAME and value is not None:
                        tap.meta_prefix = value
                    continue
                prefix = key[:4]
                if prefix == tap.log_prefix or prefix == tap.meta_prefix:
                    tap.pending.append((key, value))
            if synced and tap.pending:
                try:
                    self._persisted(tap)
                except Violation as v:
                    self.violate(v)

        return observe

    def _persisted(self, tap: DiskTap) -> None:
        ops, tap.pending = tap.pending, []
        entries: list[Entry] = []
        for key, value in ops:
            if key[:4] == tap.log_prefix:
                index = decode_index(key[4:])
                if value is None:
                    tap.log.pop(index, None)
                else:
                    entries.append(decode_entry(index, value))
            elif key[4:] == HARD_KEY and value is not None:
                self.core.hard_state(tap.member, decode_hard_state(value))
        if not entries:
            tap.last = max(tap.log, default=0)
            return
        entries.sort(key=lambda e: e.index)
        run: list[Entry] = []
        for e in entries:
            if run and e.index != run[-1].index + 1:
                self._append(tap, run)
                run = []
            run.append(e)
        self._append(tap, run)
        tap.last = max(tap.log, default=0)

    def _append(self, tap: DiskTap, run: list[Entry]) -> None:
        first = run[0].index
        prev = tap.log.get(first - 1, -1)
        self.core.appended(tap.member, run, prev, tap.last, 0)
        for e in run:
            tap.log[e.index] = e.term

    def vote_sent(self, member: int, candidate: int, answer: Any) -> None:
        """Persist before send: a granted vote leaves only once ``member``'s disk holds it
        (its term and vote synced); a pre-vote changes nothing and needs no write."""
        if not answer.vote_granted or answer.pre_vote:
            return
        hs = self.core.hard.get(member)
        if hs is None or hs.term < answer.term or (hs.term == answer.term
                                                  and hs.vote != candidate):
            self.violate(Violation(
                "vote persisted before sent",
                f"member {member} grants its term-{answer.term} vote to {candidate} while its "
                f"disk holds {hs}"))

    def sm_key(self, member: int) -> Callable[[bytes], bool]:
        """Whether a key of ``member``'s store belongs to its state machine (not the log)."""
        tap = self.taps.setdefault(member, DiskTap(member))

        def watched(key: bytes) -> bool:
            prefix = key[:4]
            return prefix != b"\0\0\0\0" and prefix != tap.log_prefix and prefix != tap.meta_prefix

        return watched

    def crashed(self, member: int) -> None:
        """``member``'s process died: what it wrote since its last sync was never acted on."""
        tap = self.taps.get(member)
        if tap is not None:
            tap.maybe.update(tap.pending_terms())
            tap.pending = []

    def restarted(self, member: int, hard: Any, snap_index: int,
                  term_at: Callable[[int], int | None]) -> None:
        """Check a restarted member against what it had persisted (durable vote, term, log)."""
        self.core.restarted(member, hard.term, hard.vote, hard.commit)
        tap = self.taps.get(member)
        if tap is None:
            return
        for index, term in sorted(tap.log.items()):
            if index <= snap_index:
                continue
            got = term_at(index)
            if got != term and not (index in tap.maybe and tap.maybe[index] == got):
                raise Violation(
                    "durable log",
                    f"member {member} persisted entry {index}/{term} before it went down, "
                    f"but came back with {'no entry' if got is None else f'term {got}'} there",
                )

    def reload_tap(self, member: int, terms: Iterable[tuple[int, int]]) -> None:
        """After a restart the disk is the truth again (the mirror restarts from it)."""
        tap = self.taps.setdefault(member, DiskTap(member))
        tap.log = dict(terms)
        tap.last = max(tap.log, default=0)
        tap.pending = []
        tap.maybe = {}

    # --- state machines ---------------------------------------------------------------------

    def applied(self, member: int, items: Sequence[tuple[int, bytes]],
                results: Sequence[bytes]) -> None:
        """``member``'s state machine applied ``items`` with ``results`` (state machine safety)."""
        try:
            self._applied(member, items, results)
        except Violation as v:
            self.violate(v)

    def _applied(self, member: int, items: Sequence[tuple[int, bytes]],
                 results: Sequence[bytes]) -> None:
        for (index, command), result in zip(items, results, strict=True):
            seen = self.applied_at.get(index)
            if seen is None:
                self.applied_at[index] = (command, result, member)
                self.max_applied = max(self.max_applied, index)
                self._session(index, command, result)
                continue
            if seen[0] != command:
                raise Violation(
                    "state machine safety",
                    f"member {member} applied {_show(command)} at {index}; member {seen[2]} "
                    f"applied {_show(seen[0])} there",
                )
            if seen[1] != result:
                raise Violation(
                    "state machine safety",
                    f"member {member} applied {_show(command)} at {index} with result "
                    f"{_result(result)}; member {seen[2]} got {_result(seen[1])} "
                    "(their states differed before it)",
                )

    def _session(self, index: int, command: bytes, result: bytes) -> None:
        if not command:
            return
        if command[0] == GROUP_MAGIC:
            # One entry carrying a client batch's writes, one result each.
            try:
                pairs = zip(split_group(command), split_group_result(result), strict=True)
                for one, answer in list(pairs):
                    self._session(index, one, answer)
            except (InvalidCommand, ValueError):
                return
            return
        try:
            cmd = KVCommand.decode(command)
        except InvalidCommand:
            return
        if not cmd.client_id:
            return
        key = (cmd.client_id, cmd.seq)
        first = self.sessions.get(key)
        if first is None:
            self.sessions[key] = (result, index)
            return
        code = KVResult.decode(result).code
        if result == first[0]:
            self.hit("retried write deduplicated by its session")
        elif code in _NO_EFFECT:
            self.stats["late duplicate refused as stale"] += 1
        else:
            raise Violation(
                "session exactly-once",
                f"write (client {cmd.client_id:#x}, seq {cmd.seq}) applied at {first[1]} "
                f"with {_result(first[0])} and again at {index} with {_result(result)}",
            )


def _show(command: bytes) -> str:
    if not command:
        return "no command"
    if command[0] == GROUP_MAGIC:
        try:
            return "group [" + "; ".join(_show(c) for c in split_group(command)) + "]"
        except InvalidCommand:
            return repr(command[:40])
    try:
        c = KVCommand.decode(command)
    except InvalidCommand:
        return repr(command[:40])
    return f"{c.op.name} {c.key!r}={c.value!r} (client {c.client_id:#x} seq {c.seq})"


def _result(raw: bytes) -> str:
    if not raw:
        return "b''"
    try:
        r = KVResult.decode(raw)
    except InvalidCommand:
        return repr(raw[:40])
    return f"{r.code.name} rev {r.revision} prev {r.prev_value!r}"


class ObservedKV(KVStateMachine):
    """The real KV state machine, telling the observer what it applied and restored."""

    def __init__(self, observer: Observer, member: int, on_restore: Callable[[int], None],
                 **options: Any) -> None:
        super().__init__(**options)
        self._observer = observer
        self._member = member
        self._on_restore = on_restore

    def apply_batch(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        """Apply, then report the items that were new (indexes above the applied one)."""
        before = self._applied
        results = super().apply_batch(items)
        new = [(i, it) for i, it in enumerate(items) if it[0] > before]
        if new:
            self._observer.applied(
                self._member, [it for _, it in new], [results[i] for i, _ in new]
            )
        return results

    def restore(self, index: int, chunks: Iterable[bytes]) -> None:
        """Restore, then report it."""
        super().restore(index, chunks)
        self._on_restore(index)
