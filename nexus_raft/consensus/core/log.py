"""The Raft log as the core sees it: stable storage plus an unstable tail.

``storage`` holds what the caller has persisted. Entries and a snapshot that
the core accepted but the caller has not yet persisted live in the unstable
part (``_ents`` from index ``_offset``, ``_snap``). ``ready()`` hands them out
(``_handed`` marks how far), ``advance()`` calls :meth:`stable_to` and they
move to storage.

Invariants:
- ``_offset`` is the index of the first unstable entry; ``last_index() ==
  _offset + len(_ents) - 1``; every index below ``_offset`` is in storage (or
  in the pending snapshot).
- ``applied <= committed <= last_index()``; ``committed`` never decreases.
- Only entries below ``_offset`` (persisted) are handed out to apply.
"""

from __future__ import annotations

from nexus_raft.consensus.core.messages import Entry, EntryType, SnapshotMeta
from nexus_raft.consensus.core.storage import LogCompacted, LogStorage, LogUnavailable
from nexus_raft.errors import ConsensusError

__all__ = ["InvariantViolation", "RaftLog"]


class InvariantViolation(ConsensusError):
    """A Raft safety invariant would be broken (a peer or the caller misbehaved)."""


class RaftLog:
    """Stable storage + unstable tail + commit/apply bookkeeping."""

    __slots__ = (
        "_ents",
        "_handed",
        "_offset",
        "_snap",
        "_snap_handed",
        "applied",
        "committed",
        "storage",
    )

    def __init__(self, storage: LogStorage, applied: int = 0) -> None:
        self.storage = storage
        self._offset = storage.last_index() + 1
        self._ents: list[Entry] = []
        self._snap: SnapshotMeta | None = None
        self._snap_handed = False
        self._handed = self._offset - 1  # last unstable index handed out in a Ready
        first = storage.first_index()
        self.committed = first - 1
        self.applied = max(first - 1, applied)

    # --- reading -------------------------------------------------------------------

    def first_index(self) -> int:
        """The first index still held as an entry."""
        if self._snap is not None:
            return self._snap.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        """Index of the last entry (or of the snapshot when the log is empty)."""
        return self._offset + len(self._ents) - 1

    def last_term(self) -> int:
        """Term of the last entry."""
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """Term at ``index``; raises LogCompacted / LogUnavailable outside the log."""
        off = self._offset
        if index >= off:
            i = index - off
            if i < len(self._ents):
                return self._ents[i].term
            raise LogUnavailable(f"index {index} beyond last index {self.last_index()}")
        snap = self._snap
        if snap is not None:
            if index == snap.index:
                return snap.term
            raise LogCompacted(f"index {index} is below the pending snapshot {snap.index}")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        """Term at ``index``, or 0 when the log does not know it."""
        try:
            return self.term(index)
        except (LogCompacted, LogUnavailable):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        """Whether the entry at ``index`` has ``term`` (index 0 / term 0 always matches)."""
        if index == 0:
            return term == 0
        try:
            return self.term(index) == term
        except (LogCompacted, LogUnavailable):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: a log ending at (last_index, last_term) is at least as up to date."""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi) (hi capped at last+1), at least one, within ``max_bytes``.

        Raises LogCompacted when ``lo`` is below ``first_index()``.
        """
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise LogCompacted(f"index {lo} is compacted")
        off = self._offset
        out: list[Entry]
        if lo < off:
            out = self.storage.entries(lo, min(hi, off), max_bytes)
            if hi <= off or len(out) < min(hi, off) - lo:
                return out
            if max_bytes is not None:
                used = sum(e.size() for e in out)
                tail = self._ents[: hi - off]
                for e in tail:
                    d = e.data  # inlined Entry.size(): this loop is hot
                    used += 24 if d is None else 24 + len(d)
                    if used > max_bytes:
                        break
                    out.append(e)
                return out
            out.extend(self._ents[: hi - off])
            return out
        out = self._ents[lo - off : hi - off]
        if max_bytes is not None:
            used = 0
            for n, e in enumerate(out):
                d = e.data  # inlined Entry.size(): this loop is hot
                used += 24 if d is None else 24 + len(d)
                if used > max_bytes and n > 0:
                    return out[:n]
        return out

    def snapshot(self) -> SnapshotMeta:
        """The newest snapshot: the pending one, else storage's."""
        if self._snap is not None:
            return self._snap
        return self.storage.snapshot()

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index <= ``index`` whose term is <= ``term`` (fast back-off hint)."""
        index = min(index, self.last_index())
        first = self.first_index() - 1
        while index > first:
            t = self.term_or_zero(index)
            if t <= term:
                return index
            index -= 1
        return index

    # --- writing -------------------------------------------------------------------

    def append(self, ents: list[Entry] | tuple[Entry, ...]) -> int:
        """Append (replacing any tail from the first entry's index); returns last index."""
        if not ents:
            return self.last_index()
        first = ents[0].index
        if first - 1 < self.committed:
            raise InvariantViolation(
                f"append at {first} would overwrite committed entries (commit {self.committed})"
            )
        off = self._offset
        if first == off + len(self._ents):
            self._ents.extend(ents)
        elif first <= off:
            # Replaces everything unstable and some stable entries: storage
            # truncates them when the caller writes these entries.
            self._offset = first
            self._ents = list(ents)
        else:
            del self._ents[first - off :]
            self._ents.extend(ents)
        if self._handed >= first:
            self._handed = first - 1
        return self.last_index()

    def append_new(self, term: int, data: bytes) -> int:
        """Leader fast path: append one normal entry after the last; returns its index."""
        ents = self._ents
        index = self._offset + len(ents)
        ents.append(Entry(index, term, EntryType.NORMAL, data))
        return index

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry], upgrade: bool) -> int:
        """Index of the first entry of ``ents`` that differs from the log (0 if none).

        With ``upgrade`` (a witness), an uncommitted entry that matches by term
        but carries a payload the stored copy lacks also counts as different.
        """
        if not upgrade:
            last = self.last_index()
            for e in ents:
                if e.index > last or not self.match_term(e.index, e.term):
                    return e.index
            return 0
        stored = self.entries(ents[0].index, ents[-1].index + 1) if ents else []
        for n, e in enumerate(ents):
            if n >= len(stored) or stored[n].term != e.term:
                return e.index
            if e.data is not None and stored[n].data is None and e.index > self.committed:
                # Committed entries already have two payload holders: no upgrade.
                return e.index
        return 0

    def maybe_append(
        self,
        prev_index: int,
        prev_term: int,
        commit: int,
        ents: tuple[Entry, ...],
        upgrade: bool = False,
    ) -> tuple[int, list[Entry]] | None:
        """AppendEntries receiver rules.

        Returns None when (prev_index, prev_term) does not match; otherwise the
        last index the leader's request covers and the entries actually written
        (from the first new or conflicting one on; empty when all were present).
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(ents)
        written: list[Entry] = []
        if ents:
            if prev_index == self.last_index():
                written = list(ents)
                self.append(written)
            else:
                ci = self.find_conflict(ents, upgrade)
                if ci:
                    if ci <= self.committed:
                        raise InvariantViolation(
                            f"entry {ci} conflicts with committed entries (commit {self.committed})"
                        )
                    written = list(ents[ci - ents[0].index :])
                    last = self.last_index()
                    if upgrade and last_new < last and self.match_term(last_new, ents[-1].term):
                        # Payload upgrade only (every term matches): keep the tail
                        # beyond the batch, which the leader also has.
                        written.extend(self.entries(last_new + 1, last + 1))
                    self.append(written)
        self.commit_to(min(commit, last_new))
        return last_new, written

    def commit_to(self, index: int) -> None:
        """Raise the commit index (never lowers it)."""
        if index > self.committed:
            if index > self.last_index():
                raise InvariantViolation(
                    f"commit {index} is beyond the last index {self.last_index()}"
                )
            self.committed = index

    def applied_to(self, index: int) -> None:
        """The caller applied everything up to ``index``."""
        if index > self.applied:
            self.applied = index

    def restore(self, snap: SnapshotMeta) -> None:
        """Replace the log by a snapshot (follower installing one)."""
        self.committed = snap.index
        self._offset = snap.index + 1
        self._ents = []
        self._snap = snap
        self._snap_handed = False
        self._handed = snap.index

    # --- Ready bookkeeping -------------------------------------------------------------

    def persisted_index(self) -> int:
        """Last index known to be durable in storage (entries below the unstable tail)."""
        return self._offset - 1 if self._snap is None else min(self._offset - 1, self._snap.index)

    def has_unhanded_entries(self) -> bool:
        """Unstable entries not yet handed out in a Ready."""
        return self._handed < self.last_index()

    def take_unstable(self) -> tuple[Entry, ...]:
        """Hand out the unstable entries not handed out yet."""
        start = max(self._handed + 1, self._offset)
        ents = tuple(self._ents[start - self._offset :])
        self._handed = self.last_index()
        return ents

    def pending_snapshot(self) -> SnapshotMeta | None:
        """The unstable snapshot, if not handed out yet."""
        if self._snap is not None and not self._snap_handed:
            return self._snap
        return None

    def take_snapshot(self) -> SnapshotMeta | None:
        """Hand out the unstable snapshot."""
        snap = self.pending_snapshot()
        if snap is not None:
            self._snap_handed = True
        return snap

    def applicable_hi(self) -> int:
        """Highest index that may be handed out to apply (committed and persisted)."""
        if self._snap is not None:
            return 0
        return min(self.committed, self._offset - 1)

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are durable: drop them from the unstable tail."""
        off = self._offset
        if index < off:
            return
        i = index - off
        if i >= len(self._ents) or self._ents[i].term != term:
            return  # overwritten since it was handed out
        del self._ents[: i + 1]
        self._offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        """The snapshot at ``index`` is durable."""
        if self._snap is not None and self._snap.index == index:
            self._snap = None
            self._snap_handed = False
