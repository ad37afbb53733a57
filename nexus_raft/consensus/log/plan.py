"""The next state of a :class:`~nexus_raft.consensus.log.store.LogStore`, as one write batch.

Split out of ``store.py``: the planning of ``save()`` (snapshot install,
append with conflict truncation) and the cache update after the write. It
follows MemoryStorage's write semantics step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nexus_raft.consensus.core.messages import Entry, EntryType, SnapshotMeta
from nexus_raft.consensus.log.codec import (
    FLOOR_KEY,
    SNAP_KEY,
    conf_key,
    encode_entry,
    encode_index,
    encode_snapshot,
    encode_u64,
)
from nexus_raft.errors import RaftUsageError
from nexus_raft.storage import Batch, Tree

__all__ = ["LogPlan", "PlannedLog", "payload_size"]


def payload_size(entry: Entry) -> int:
    """What ``entry`` counts against the tail cache's byte bound (its payload)."""
    data = entry.data
    return len(data) if data else 0


class PlannedLog(Protocol):
    """The fields of a :class:`~nexus_raft.consensus.log.store.LogStore` a plan reads and sets.

    A plan reads them when it is made and writes them back in :meth:`LogPlan.commit`
    (the store's in-memory state; the store itself owns the invariants:
    ``_snap.index <= _floor <= _last`` and the cache holds a contiguous run
    ``[_cache_lo, _cache_lo + len(_cache))`` of at most ``_cache_max`` entries,
    whose payloads total ``_cache_bytes``, at most ``_cache_bytes_max`` unless
    the cache holds a single entry).
    """

    _snap: SnapshotMeta
    _last: int
    _floor: int
    _conf: list[Entry]
    _meta: Tree
    _log: Tree
    _cache: dict[int, Entry]
    _cache_lo: int
    _cache_max: int
    _cache_bytes: int
    _cache_bytes_max: int

    def term(self, index: int) -> int: ...


class LogPlan:
    """The next state of a LogStore, built next to one write batch.

    Nothing in the LogStore changes until :meth:`commit`, which the caller runs
    only after the batch is durable, so a failed write leaves memory and disk
    in agreement.
    """

    __slots__ = (
        "batch",
        "conf",
        "drop_cache_upto",
        "floor",
        "last",
        "log",
        "new_entries",
        "reset_cache",
        "snap",
        "truncate_from",
    )

    def __init__(self, log: PlannedLog) -> None:
        self.log = log
        self.batch = Batch()
        self.snap = log._snap
        self.last = log._last
        self.floor = log._floor
        self.conf = list(log._conf)
        self.new_entries: list[Entry] = []
        self.reset_cache = False
        self.drop_cache_upto = 0
        self.truncate_from: int | None = None

    def set_snapshot(self, meta: SnapshotMeta) -> None:
        """Compaction part of a snapshot (keys are deleted by the caller)."""
        lg = self.log
        self.batch.insert(SNAP_KEY, encode_snapshot(meta), tree=lg._meta)
        self.conf = self._drop_conf(lambda e: e.index <= meta.index)
        self.snap = meta
        self.drop_cache_upto = meta.index
        if meta.index > self.floor:
            self.floor = meta.index
            self.batch.insert(FLOOR_KEY, encode_u64(self.floor), tree=lg._meta)

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """MemoryStorage.apply_snapshot, into the batch."""
        lg = self.log
        old = self.snap
        if meta.index <= old.index and old.index > 0:
            return
        first = old.index + 1
        keep = old.index <= meta.index <= self.last and lg.term(meta.index) == meta.term
        top = meta.index if keep else self.last
        for index in range(first, top + 1):
            self.batch.remove(encode_index(index), tree=lg._log)
        self.set_snapshot(meta)
        if not keep:
            self.conf = self._drop_conf(lambda e: True)
            self.last = meta.index
            self.reset_cache = True

    def append(self, entries: list[Entry]) -> None:
        """MemoryStorage.append, into the batch."""
        lg = self.log
        offset = self.snap.index
        if entries[-1].index <= offset:
            return
        if entries[0].index <= offset:
            entries = entries[offset + 1 - entries[0].index :]
        first = entries[0].index
        new_last = entries[-1].index
        if first > self.last + 1:
            raise RaftUsageError(f"gap in appended entries: first {first}, last index {self.last}")
        if first <= self.last:
            # Conflicting suffix: keys up to new_last are overwritten below.
            for index in range(new_last + 1, self.last + 1):
                self.batch.remove(encode_index(index), tree=lg._log)
            self.conf = self._drop_conf(lambda e: e.index >= first)
            self.truncate_from = first
        if self.floor >= first:
            # Freshly written entries carry whatever payload they were sent with.
            self.floor = first - 1
            self.batch.insert(FLOOR_KEY, encode_u64(self.floor), tree=lg._meta)
        for entry in entries:
            self.batch.insert(encode_index(entry.index), encode_entry(entry), tree=lg._log)
            if entry.type is EntryType.CONF_CHANGE:
                self.batch.insert(conf_key(entry.index), b"", tree=lg._meta)
                self.conf.append(entry)
        self.new_entries.extend(entries)
        self.last = new_last

    def _drop_conf(self, pred: Callable[[Entry], bool]) -> list[Entry]:
        keep: list[Entry] = []
        for entry in self.conf:
            if pred(entry):
                self.batch.remove(conf_key(entry.index), tree=self.log._meta)
            else:
                keep.append(entry)
        return keep

    def commit(self) -> None:
        """Make the planned state the LogStore's (after the batch is durable)."""
        lg = self.log
        lg._snap = self.snap
        lg._last = self.last
        lg._floor = self.floor
        lg._conf = self.conf
        cache = lg._cache
        size = lg._cache_bytes
        if self.reset_cache:
            cache.clear()
            size = 0
        # Compacted head, then the overwritten suffix; the rest stays contiguous.
        while cache and lg._cache_lo <= self.drop_cache_upto:
            size -= payload_size(cache.pop(lg._cache_lo))
            lg._cache_lo += 1
        if self.truncate_from is not None:
            for index in range(max(self.truncate_from, lg._cache_lo), lg._cache_lo + len(cache)):
                size -= payload_size(cache.pop(index))
        tail = self.new_entries[-lg._cache_max :]
        if tail:
            if not cache or tail[0].index != lg._cache_lo + len(cache):
                cache.clear()
                size = 0
                lg._cache_lo = tail[0].index
            for entry in tail:
                cache[entry.index] = entry
                size += payload_size(entry)
            # Bounded by count and by payload bytes: one client batch is one
            # entry, so a count alone would let big batches hold gigabytes.
            limit = lg._cache_bytes_max
            while len(cache) > lg._cache_max or (size > limit and len(cache) > 1):
                size -= payload_size(cache.pop(lg._cache_lo))
                lg._cache_lo += 1
        if not cache:
            lg._cache_lo = lg._last + 1
            size = 0
        lg._cache_bytes = size
