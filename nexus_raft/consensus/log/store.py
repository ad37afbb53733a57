"""The durable Raft log: hard state, entries and snapshot metadata on a Store.

:class:`LogStore` implements the core's
:class:`~nexus_raft.consensus.core.storage.LogStorage` read protocol with the
same answers as :class:`~nexus_raft.consensus.core.memory_storage.MemoryStorage`,
and persists each ``Ready`` with :meth:`LogStore.save`: one LevelDB write batch
with fsync, however many entries it carries (group commit).

Layout (see :mod:`nexus_raft.consensus.log.codec`): tree ``raft.log`` maps the
8-byte big-endian index to the encoded entry; tree ``raft.meta`` holds the
hard state, the snapshot metadata (with its configuration), the witness's
payload floor and one marker per configuration entry still in the log.

Invariants (also MemoryStorage's): ``first_index() == snapshot().index + 1``;
the log holds exactly the indexes ``first_index() .. last_index()``; the
in-memory cache holds a contiguous tail ``cache_lo .. last_index()`` of at
most ``cache_entries`` entries, each equal to what is on disk.

Opening reads the metadata, the last key (one reverse seek), one point read
at the snapshot index and the cached tail only, so restart time does not
grow with the log (nor with the deleted entries still on disk).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

from nexus_raft.consensus.core.membership import conf_state_after
from nexus_raft.consensus.core.messages import ConfState, Entry, EntryType, HardState, SnapshotMeta
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from nexus_raft.consensus.log.codec import (
    CONF_PREFIX,
    FLOOR_KEY,
    HARD_KEY,
    SNAP_KEY,
    decode_entry,
    decode_hard_state,
    decode_index,
    decode_snapshot,
    decode_u64,
    encode_entry,
    encode_hard_state,
    encode_index,
    encode_snapshot,
    encode_u64,
)
from nexus_raft.consensus.log.plan import LogPlan, payload_size
from nexus_raft.errors import CorruptionError, RaftUsageError
from nexus_raft.storage import Batch, Store

__all__ = ["LOG_TREE", "META_TREE", "LogStore"]

logger = logging.getLogger(__name__)

LOG_TREE = "raft.log"
META_TREE = "raft.meta"

# Deletes/rewrites of large ranges are split into batches of this many keys so
# that memory stays bounded; every split point leaves a state open() accepts.
_CHUNK = 50_000

# The tail cache's default payload bound. A client batch is one entry (up to
# several MiB), so a bound in entries alone let the cache, and with it a
# member's RSS, grow into gigabytes (bench/scale.py: 650 MiB per member after
# 64 KiB and 1 MiB values). Entries below the cache are read from LevelDB.
DEFAULT_CACHE_BYTES = 16 << 20

# A payload floor moved without rewriting anything is persisted only once it
# leads the persisted one by this many indexes (see drop_payloads).
_FLOOR_LAG = 1024


class LogStore:
    """Raft log on ``store`` (trees ``raft.log`` and ``raft.meta``).

    ``conf_state`` bootstraps a brand-new log (no snapshot record yet): it
    becomes the configuration of the empty index-0 snapshot, as with
    MemoryStorage. It is ignored when the store already holds a log.
    ``cache_entries`` and ``cache_bytes`` (payload bytes) bound the in-memory
    tail cache; a single entry bigger than ``cache_bytes`` is still cached.
    Thread-safe: every public method holds one lock.
    """

    __slots__ = (
        "_cache",
        "_cache_bytes",
        "_cache_bytes_max",
        "_cache_lo",
        "_cache_max",
        "_conf",
        "_floor",
        "_floor_saved",
        "_hard",
        "_last",
        "_lock",
        "_log",
        "_meta",
        "_snap",
        "_store",
    )

    def __init__(
        self,
        store: Store,
        *,
        cache_entries: int = 4096,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        conf_state: ConfState | None = None,
    ) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a nexus_raft.storage.Store, not {type(store).__name__}")
        if not isinstance(cache_entries, int) or isinstance(cache_entries, bool):
            raise TypeError(f"cache_entries must be an int, not {type(cache_entries).__name__}")
        if cache_entries < 1:
            raise ValueError("cache_entries must be at least 1")
        if not isinstance(cache_bytes, int) or isinstance(cache_bytes, bool):
            raise TypeError(f"cache_bytes must be an int, not {type(cache_bytes).__name__}")
        if cache_bytes < 0:
            raise ValueError("cache_bytes must be at least 0")
        if conf_state is not None and not isinstance(conf_state, ConfState):
            raise TypeError(f"conf_state must be a ConfState, not {type(conf_state).__name__}")
        self._store = store
        self._log = store.tree(LOG_TREE)
        self._meta = store.tree(META_TREE)
        self._lock = threading.RLock()
        self._cache_max = cache_entries
        self._cache_bytes_max = cache_bytes
        self._cache_bytes = 0  # payload bytes of the cached entries
        # index -> Entry for indexes cache_lo .. last (contiguous, possibly empty).
        self._cache: dict[int, Entry] = {}
        self._cache_lo = 1
        # Configuration entries after the snapshot, in index order.
        self._conf: list[Entry] = []
        self._snap = SnapshotMeta()
        self._hard = HardState()
        self._floor = 0
        # The floor as persisted; may trail _floor (see drop_payloads).
        self._floor_saved = 0
        self._last = 0
        self._load(conf_state)

    # --- opening -------------------------------------------------------------------

    def _load(self, bootstrap: ConfState | None) -> None:
        raw = self._meta.get(SNAP_KEY)
        if raw is None:
            self._snap = SnapshotMeta(0, 0, bootstrap if bootstrap is not None else ConfState())
            if bootstrap is not None:
                batch = Batch()
                batch.insert(SNAP_KEY, encode_snapshot(self._snap), tree=self._meta)
                _write_synced(self._store, batch)
        else:
            self._snap = decode_snapshot(raw)
        raw = self._meta.get(HARD_KEY)
        self._hard = decode_hard_state(raw) if raw is not None else HardState()
        raw = self._meta.get(FLOOR_KEY)
        self._floor = decode_u64(raw) if raw is not None else 0
        self._floor_saved = self._floor
        snap_index = self._snap.index
        tail = self._log.last()
        self._last = max(snap_index, decode_index(tail[0])) if tail is not None else snap_index
        # Leftovers of an interrupted compaction: _purge deletes [old first,
        # snapshot index] in ascending chunks after the snapshot record is
        # durable, so whatever survives a crash is a contiguous run ending AT
        # the snapshot index; every other deletion of entries <= the snapshot
        # index shares its batch with the snapshot record. One point read
        # tells, then. (Seeking to the first key instead walks every deletion
        # marker LevelDB has not compacted away yet: up to a million after a
        # long run, a quarter of a second at open.)
        if snap_index > 0 and self._log.get(encode_index(snap_index)) is not None:
            head = self._log.first()
            if head is not None:
                self._purge(decode_index(head[0]), snap_index)
        stale: list[bytes] = []
        for key, _ in self._meta.scan_prefix(CONF_PREFIX):
            index = decode_u64(key[len(CONF_PREFIX) :])
            entry = self._read(index) if snap_index < index <= self._last else None
            if entry is None or entry.type is not EntryType.CONF_CHANGE:
                stale.append(key)
            else:
                self._conf.append(entry)
        if stale:
            batch = Batch()
            for key in stale:
                batch.remove(key, tree=self._meta)
            _write_synced(self._store, batch)
        # Warm the cache with the tail: bounded by cache_entries and
        # cache_bytes. A backward scan of the raw values finds the start (no
        # decoding), then one short forward scan decodes from there.
        lo = self._last + 1
        warm_bytes = 0
        oldest = max(snap_index + 1, self._last - self._cache_max + 1)
        if oldest <= self._last:
            for raw_key, raw in self._log.range(
                encode_index(oldest), encode_index(self._last + 1), reverse=True
            ):
                warm_bytes += len(raw)
                if warm_bytes > self._cache_bytes_max and lo <= self._last:
                    break
                lo = decode_index(raw_key)
        self._cache_lo = lo
        if lo <= self._last:
            expect = lo
            for key, value in self._log.range(encode_index(lo), encode_index(self._last + 1)):
                index = decode_index(key)
                if index != expect:
                    raise CorruptionError(f"raft.log is missing entry {expect}")
                entry = self._cache[index] = decode_entry(index, value)
                self._cache_bytes += payload_size(entry)
                expect += 1
            if expect != self._last + 1:
                raise CorruptionError(f"raft.log is missing entry {expect}")
        logger.debug(
            "opened raft log: snapshot %d, last %d, hard %s", snap_index, self._last, self._hard
        )

    def _purge(self, lo: int, hi: int) -> None:
        """Delete log keys [lo, hi] in chunked batches (no reads)."""
        while lo <= hi:
            top = min(hi, lo + _CHUNK - 1)
            batch = Batch()
            for index in range(lo, top + 1):
                batch.remove(encode_index(index), tree=self._log)
            self._store.apply_batch(batch)
            lo = top + 1

    # --- LogStorage (read side) ----------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the configuration after every stable entry."""
        with self._lock:
            return self._hard, conf_state_after(self._snap.conf_state, self._conf)

    def conf_entries(self) -> tuple[Entry, ...]:
        """The configuration entries above the snapshot, in log order (held in memory)."""
        with self._lock:
            return tuple(self._conf)

    def conf_state_at(self, index: int) -> ConfState:
        """The configuration as of ``index`` (snapshot index <= index <= last index).

        Built from the snapshot's configuration and the configuration entries
        held in memory: no log read, however long the log.
        """
        _check_int(index, "index")
        with self._lock:
            snap = self._snap
            if index < snap.index:
                raise LogCompacted(f"index {index} is compacted (snapshot at {snap.index})")
            if index > self._last:
                raise LogUnavailable(f"index {index} is beyond the last index {self._last}")
            return conf_state_after(snap.conf_state, (e for e in self._conf if e.index <= index))

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi): at least one if any, then stop before ``max_bytes``.

        Raises LogCompacted if ``lo <= snapshot().index``, LogUnavailable if
        ``hi > last_index() + 1``.
        """
        _check_int(lo, "lo")
        _check_int(hi, "hi")
        if max_bytes is not None:
            _check_int(max_bytes, "max_bytes")
        with self._lock:
            snap_index = self._snap.index
            if lo <= snap_index:
                raise LogCompacted(f"index {lo} is compacted (snapshot at {snap_index})")
            if hi > self._last + 1:
                raise LogUnavailable(f"index {hi - 1} is beyond the last index {self._last}")
            out: list[Entry] = []
            size = 0
            for entry in self._iter_entries(lo, hi):
                size += entry.size()
                if max_bytes is not None and size > max_bytes and out:
                    break
                out.append(entry)
            return out

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; the snapshot index keeps the snapshot's term."""
        _check_int(index, "index")
        with self._lock:
            snap = self._snap
            if index < snap.index:
                raise LogCompacted(f"index {index} is compacted (snapshot at {snap.index})")
            if index > self._last:
                raise LogUnavailable(f"index {index} is beyond the last index {self._last}")
            if index == snap.index:
                return snap.term
            entry = self._cache.get(index)
            if entry is None:
                entry = self._read(index)
                if entry is None:
                    raise CorruptionError(f"raft.log is missing entry {index}")
            return entry.term

    def first_index(self) -> int:
        """The first index still held as an entry (snapshot index + 1)."""
        with self._lock:
            return self._snap.index + 1

    def last_index(self) -> int:
        """The last index in the log (the snapshot index when the log is empty)."""
        with self._lock:
            return self._last

    def snapshot(self) -> SnapshotMeta:
        """Metadata of the newest snapshot (index 0 when there is none)."""
        with self._lock:
            return self._snap

    # --- extra read-side state ------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The store this log lives in (the state machine's trees may share it)."""
        return self._store

    @property
    def hard_state(self) -> HardState:
        """The persisted hard state."""
        with self._lock:
            return self._hard

    @property
    def payload_floor(self) -> int:
        """Payloads of entries at or below this index have been dropped (witness)."""
        with self._lock:
            return self._floor

    @property
    def cached_entries(self) -> int:
        """How many entries the tail cache holds now (never above ``cache_entries``)."""
        with self._lock:
            return len(self._cache)

    # --- write side -------------------------------------------------------------------------

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        """Persist one ``Ready``: snapshot, then entries, then hard state, in ONE fsync'd batch.

        Entries replace the log from the first one's index on (a conflicting
        suffix is deleted); entries already covered by the snapshot are
        skipped; a gap after the last index raises RaftUsageError. A snapshot
        older than the current one is ignored; entries after a newer snapshot
        are kept only if the log agrees with it (same term at its index).
        """
        if hard_state is not None and not isinstance(hard_state, HardState):
            raise TypeError(f"hard_state must be a HardState, not {type(hard_state).__name__}")
        if snapshot is not None and not isinstance(snapshot, SnapshotMeta):
            raise TypeError(f"snapshot must be a SnapshotMeta, not {type(snapshot).__name__}")
        ents = _check_entries(entries)
        with self._lock:
            plan = LogPlan(self)
            if snapshot is not None:
                plan.install_snapshot(snapshot)
            if ents:
                plan.append(ents)
            if hard_state is not None:
                plan.batch.insert(HARD_KEY, encode_hard_state(hard_state), tree=self._meta)
            if not len(plan.batch):
                return
            saved_floor = self._fold_floor(plan)
            _write_synced(self._store, plan.batch)
            if hard_state is not None:
                self._hard = hard_state
            self._floor_saved = saved_floor
            plan.commit()

    def append(self, entries: Sequence[Entry]) -> None:
        """Persist ``Ready.entries`` alone (MemoryStorage's name for ``save(None, entries)``)."""
        self.save(None, entries, None)

    def set_hard_state(self, hs: HardState) -> None:
        """Persist ``Ready.hard_state`` alone."""
        if not isinstance(hs, HardState):
            raise TypeError(f"hs must be a HardState, not {type(hs).__name__}")
        self.save(hs, (), None)

    def apply_snapshot(self, meta: SnapshotMeta) -> None:
        """Persist ``Ready.snapshot`` alone (an installed snapshot's metadata)."""
        if not isinstance(meta, SnapshotMeta):
            raise TypeError(f"meta must be a SnapshotMeta, not {type(meta).__name__}")
        self.save(None, (), meta)

    def create_snapshot(
        self, meta: SnapshotMeta | int, conf_state: ConfState | None = None
    ) -> SnapshotMeta:
        """Record a local snapshot and compact the log up to it; returns the snapshot meta.

        ``meta`` is either the full metadata (its term must match the log) or
        just an index; then the term comes from the log and the configuration
        defaults to the one as of that index. Snapshotting and compaction are
        one step so that ``first_index() == snapshot().index + 1`` holds. A
        snapshot at or below the current one changes nothing.
        """
        if isinstance(meta, SnapshotMeta):
            index = meta.index
            if conf_state is not None:
                raise TypeError("conf_state is taken from meta; pass one or the other")
        else:
            _check_int(meta, "meta")
            index = meta
            if conf_state is not None and not isinstance(conf_state, ConfState):
                raise TypeError(f"conf_state must be a ConfState, not {type(conf_state).__name__}")
        with self._lock:
            if index <= self._snap.index:
                return self._snap
            if index > self._last:
                raise RaftUsageError(f"cannot snapshot at {index}: last index is {self._last}")
            term = self.term(index)
            if isinstance(meta, SnapshotMeta):
                if meta.term != term:
                    raise RaftUsageError(
                        f"snapshot term {meta.term} at {index} does not match the log's {term}"
                    )
                new = meta
            else:
                if conf_state is None:
                    conf_state = conf_state_after(
                        self._snap.conf_state, (e for e in self._conf if e.index <= index)
                    )
                new = SnapshotMeta(index, term, conf_state)
            old_first = self._snap.index + 1
            plan = LogPlan(self)
            plan.set_snapshot(new)
            saved_floor = self._fold_floor(plan)
            # Metadata first, in a synced batch: from here on open() treats any
            # key <= index as garbage, so the range delete may be split.
            _write_synced(self._store, plan.batch)
            self._floor_saved = saved_floor
            plan.commit()
            self._purge(old_first, index)
            return new

    def compact(self, index: int) -> SnapshotMeta:
        """Drop entries up to ``index`` (same as ``create_snapshot(index)``)."""
        return self.create_snapshot(index)

    def drop_payloads(self, upto: int) -> None:
        """Witness: forget the payloads of entries <= ``upto`` (configuration entries keep theirs).

        Incremental: only entries above the previous payload floor are
        rewritten, in bounded batches, each advancing the persisted floor.

        Lazy when there is nothing to rewrite (the healthy witness's case:
        every entry arrived metadata-only): the floor moves in memory only
        and rides on a later :meth:`save` or snapshot batch once it leads the
        persisted floor by ``_FLOOR_LAG`` indexes, so a healthy witness pays
        one small write-ahead-log record per ``Ready``. A persisted floor
        that trails the real one is safe: it only claims "may hold payloads
        above here" (the entries between are metadata-only on disk), and a
        restart rescans at most ``_FLOOR_LAG`` entries. A floor that must go
        down (a truncated tail) is always written in the same batch.
        """
        _check_int(upto, "upto")
        with self._lock:
            upto = min(upto, self._last)
            start = max(self._floor, self._snap.index) + 1
            while start <= upto:
                stop = min(upto, start + _CHUNK - 1)
                batch = Batch()
                rewritten: list[Entry] = []
                for entry in self._iter_entries(start, stop + 1):
                    if entry.data is not None and entry.type is not EntryType.CONF_CHANGE:
                        slim = entry.metadata_only()
                        batch.insert(encode_index(entry.index), encode_entry(slim), tree=self._log)
                        rewritten.append(slim)
                if rewritten:
                    batch.insert(FLOOR_KEY, encode_u64(stop), tree=self._meta)
                    self._store.apply_batch(batch)
                    self._floor_saved = stop
                for slim in rewritten:
                    old = self._cache.get(slim.index)
                    if old is not None:
                        self._cache[slim.index] = slim
                        self._cache_bytes -= payload_size(old)
                self._floor = stop
                start = stop + 1

    # --- internals -------------------------------------------------------------------------

    def _fold_floor(self, plan: LogPlan) -> int:
        """The floor ``plan``'s batch persists, adding a lazily moved one (lock held).

        The plan writes the floor itself whenever it moves it (truncation,
        snapshot); otherwise ``plan.floor == _floor >= _floor_saved``.
        """
        if plan.floor != self._floor:
            return plan.floor
        if plan.floor - self._floor_saved >= _FLOOR_LAG:
            plan.batch.insert(FLOOR_KEY, encode_u64(plan.floor), tree=self._meta)
            return plan.floor
        return self._floor_saved

    def _read(self, index: int) -> Entry | None:
        raw = self._log.get(encode_index(index))
        return None if raw is None else decode_entry(index, raw)

    def _iter_entries(self, lo: int, hi: int) -> Iterator[Entry]:
        """Entries [lo, hi) from disk below the cache, then from the cache (lock held)."""
        disk_hi = min(hi, self._cache_lo if self._cache else self._last + 1)
        if lo < disk_hi:
            expect = lo
            for key, value in self._log.range(encode_index(lo), encode_index(disk_hi)):
                index = decode_index(key)
                if index != expect:
                    raise CorruptionError(f"raft.log is missing entry {expect}")
                yield decode_entry(index, value)
                expect += 1
            if expect != disk_hi:
                raise CorruptionError(f"raft.log is missing entry {expect}")
            lo = disk_hi
        cache = self._cache
        for index in range(lo, hi):
            yield cache[index]

    def __repr__(self) -> str:
        return (
            f"LogStore(first={self._snap.index + 1}, last={self._last}, hard={self._hard}, "
            f"snap={self._snap.index}, cached={len(self._cache)})"
        )


def _write_synced(store: Store, batch: Batch) -> None:
    """Apply ``batch`` as ONE synced write: durable when this returns, whatever the store's mode.

    Never "the batch unsynced, then a small synced marker": when the batch
    fills LevelDB's memtable, the marker's write rotates LevelDB's log, and
    LevelDB closes the old log file (holding the batch) without an fsync and
    syncs only the new one. A power cut before the background flush then
    loses the batch while the marker survives: acknowledged entries, a sent
    vote, a term (tests/consensus/log/test_log_sync.py pins the syscalls).
    """
    store.apply_batch(batch, sync=True)


def _check_int(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def _check_entries(entries: Sequence[Entry]) -> list[Entry]:
    if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
        raise TypeError(f"entries must be a sequence of Entry, not {type(entries).__name__}")
    out = list(entries)
    prev: int | None = None
    for entry in out:
        if not isinstance(entry, Entry):
            raise TypeError(f"entries must hold Entry values, not {type(entry).__name__}")
        if prev is not None and entry.index != prev + 1:
            raise RaftUsageError(f"entries are not consecutive: {prev} then {entry.index}")
        prev = entry.index
    return out
