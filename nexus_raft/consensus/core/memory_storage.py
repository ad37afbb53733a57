"""An in-memory :class:`~nexus_raft.consensus.core.storage.LogStorage`.

Used by the simulator, the scenario tests and the core benchmark. It is the
reference for what a durable log store must do: the caller writes each
``Ready`` into it (``apply_snapshot``, ``append``, ``set_hard_state``,
``drop_payloads``) before calling ``Raft.advance()``.

Layout: ``_ents[0]`` is a sentinel standing for the snapshot point (its index
and term are the snapshot's), so the entry at index ``i`` lives at
``_ents[i - _ents[0].index]``. Invariants: ``first_index() == snapshot().index
+ 1`` and indexes in ``_ents`` are contiguous.
"""

from __future__ import annotations

from nexus_raft.consensus.core.membership import conf_state_after
from nexus_raft.consensus.core.messages import ConfState, Entry, HardState, SnapshotMeta
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from nexus_raft.errors import RaftUsageError

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Log, hard state and snapshot metadata held in Python lists.

    ``conf_state`` bootstraps a new cluster: it becomes the configuration of
    the (empty, index 0) initial snapshot.
    """

    __slots__ = ("_ents", "_hard", "_payload_floor", "_snap")

    def __init__(
        self,
        conf_state: ConfState | None = None,
        hard_state: HardState | None = None,
    ) -> None:
        self._snap = SnapshotMeta(0, 0, conf_state if conf_state is not None else ConfState())
        self._ents: list[Entry] = [Entry(0, 0, data=None)]
        self._hard = hard_state if hard_state is not None else HardState()
        # Every entry at or below this index has had its payload dropped.
        self._payload_floor = 0

    # --- LogStorage (read side) --------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """Hard state and the configuration after every entry of the stable log."""
        return self._hard, conf_state_after(self._snap.conf_state, self._ents[1:])

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), at least one, then at most ``max_bytes`` in total."""
        offset = self._ents[0].index
        if lo <= offset:
            raise LogCompacted(f"index {lo} is compacted (snapshot at {offset})")
        if hi > offset + len(self._ents):
            raise LogUnavailable(f"index {hi - 1} is beyond the last index {self.last_index()}")
        if lo >= hi:
            return []
        ents = self._ents[lo - offset : hi - offset]
        if max_bytes is None:
            return ents
        size = 0
        for n, e in enumerate(ents):
            size += e.size()
            if size > max_bytes and n > 0:
                return ents[:n]
        return ents

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; the snapshot's index keeps its term."""
        offset = self._ents[0].index
        if index < offset:
            raise LogCompacted(f"index {index} is compacted (snapshot at {offset})")
        if index - offset >= len(self._ents):
            raise LogUnavailable(f"index {index} is beyond the last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        """The first index still held as an entry (snapshot index + 1)."""
        return self._ents[0].index + 1

    def last_index(self) -> int:
        """The last index in the log (the snapshot index when the log is empty)."""
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> SnapshotMeta:
        """Metadata of the newest snapshot (index 0 when there is none)."""
        return self._snap

    # --- write side (the caller writes each Ready here) --------------------------------

    @property
    def hard_state(self) -> HardState:
        """The persisted hard state."""
        return self._hard

    @property
    def payload_floor(self) -> int:
        """Payloads of entries at or below this index have been dropped (witness)."""
        return self._payload_floor

    def set_hard_state(self, hs: HardState) -> None:
        """Persist ``Ready.hard_state``."""
        if not isinstance(hs, HardState):
            raise TypeError(f"hs must be a HardState, not {type(hs).__name__}")
        self._hard = hs

    def append(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Persist ``Ready.entries``: entries from the first one's index on replace the tail.

        Entries already covered by the snapshot are skipped; a gap after the
        last index raises :class:`RaftUsageError`.
        """
        if not entries:
            return
        offset = self._ents[0].index
        first = entries[0].index
        last = entries[-1].index
        if last <= offset:
            return  # all compacted already
        if first <= offset:
            entries = entries[offset + 1 - first :]
            first = offset + 1
        if first > offset + len(self._ents):
            raise RaftUsageError(
                f"gap in appended entries: first {first}, last index {self.last_index()}"
            )
        del self._ents[first - offset :]
        self._ents.extend(entries)
        if self._payload_floor >= first:
            # Freshly written entries carry whatever payload they were sent with.
            self._payload_floor = first - 1

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Persist ``Ready.snapshot``: the log restarts after ``meta.index``.

        A snapshot older than the current one is ignored. Entries after the
        snapshot that agree with it (same term at its index) are kept, as the
        Raft paper allows; otherwise the whole log is discarded.
        """
        if not isinstance(meta, SnapshotMeta):
            raise TypeError(f"meta must be a SnapshotMeta, not {type(meta).__name__}")
        offset = self._ents[0].index
        if meta.index <= self._snap.index and self._snap.index > 0:
            return
        sentinel = Entry(meta.index, meta.term, data=None)
        if offset <= meta.index < offset + len(self._ents) and (
            self._ents[meta.index - offset].term == meta.term
        ):
            self._ents = [sentinel, *self._ents[meta.index - offset + 1 :]]
        else:
            self._ents = [sentinel]
        self._snap = meta
        self._payload_floor = max(self._payload_floor, meta.index)

    def create_snapshot(self, index: int, conf_state: ConfState | None = None) -> SnapshotMeta:
        """Record a snapshot at ``index`` and compact the log up to it.

        Snapshotting and compaction are one step so that ``first_index() ==
        snapshot().index + 1`` always holds. ``conf_state`` defaults to the
        configuration as of ``index`` derived from the log. The caller must
        only snapshot what its state machine has applied.
        """
        offset = self._ents[0].index
        if index <= offset:
            return self._snap
        if index > self.last_index():
            raise RaftUsageError(f"cannot snapshot at {index}: last index is {self.last_index()}")
        if conf_state is None:
            conf_state = conf_state_after(self._snap.conf_state, self._ents[1 : index - offset + 1])
        term = self._ents[index - offset].term
        self._snap = SnapshotMeta(index, term, conf_state)
        self._ents = [Entry(index, term, data=None), *self._ents[index - offset + 1 :]]
        self._payload_floor = max(self._payload_floor, index)
        return self._snap

    def compact(self, index: int) -> SnapshotMeta:
        """Same as ``create_snapshot(index)``: drop entries up to ``index``."""
        return self.create_snapshot(index)

    def drop_payloads(self, upto: int) -> None:
        """Apply ``Ready.payload_floor`` (witness): forget payloads of entries <= ``upto``.

        Configuration entries keep their payload. Amortised O(entries dropped):
        the scan starts at the previous floor.
        """
        offset = self._ents[0].index
        upto = min(upto, self.last_index())
        start = max(self._payload_floor, offset) + 1
        ents = self._ents
        for i in range(start - offset, upto - offset + 1):
            e = ents[i]
            if e.data is not None:
                ents[i] = e.metadata_only()
        self._payload_floor = max(self._payload_floor, upto)

    def payload_bytes(self) -> int:
        """Total payload bytes held (for witness tests and benchmarks)."""
        return sum(len(e.data) for e in self._ents[1:] if e.data is not None)

    def __repr__(self) -> str:
        return (
            f"MemoryStorage(first={self.first_index()}, last={self.last_index()}, "
            f"hard={self._hard}, snap={self._snap.index})"
        )
