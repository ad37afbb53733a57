"""The MVCC write set of one apply pass: revisions, per-key metadata, events, lease index.

:class:`WriteSet` is what an apply pass writes through. Every command is one
*transaction* (:meth:`WriteSet.begin` / :meth:`WriteSet.end`): its changes
share one main revision (``revision + 1``) and get sub revisions 0, 1, ...;
a transaction that changed nothing does not consume a revision. Reads
(:meth:`get`, :meth:`range_keys`) see the pass's own pending writes (an
overlay over the trees), so a command observes the earlier commands of the
same batch exactly as if each had been written on its own.

Leases: ``kv.leases`` holds granted leases (id -> TTL seconds) and
``kv.lease_keys`` indexes attached keys (lease id u64 + key), kept in step
with every put and delete here, so revoking a lease finds its keys without
scanning the data.

Nothing here is durable until the caller applies :attr:`batch`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from nexus_raft.kv.records import (
    KeyRecord,
    decode_event,
    decode_record,
    decode_u64,
    encode_event,
    encode_record,
    encode_u64,
    event_key,
    event_size,
    split_event_key,
)
from nexus_raft.kv.watch_hub import WatchEvent
from nexus_raft.storage import Batch, Tree

__all__ = ["WriteSet", "lease_key"]

_LEASE_KEY = struct.Struct(">Q")


def lease_key(lease: int, key: bytes) -> bytes:
    """The ``kv.lease_keys`` entry of ``key`` attached to ``lease``."""
    return _LEASE_KEY.pack(lease) + key


class WriteSet:
    """Pending writes of one apply pass (see the module docstring).

    ``data``/``events``/``leases``/``lease_keys`` are the state machine's
    trees; ``revision`` the last committed main revision. Plain ``kv.data``
    writes go into :attr:`batch` without a tree (the caller applies the
    batch to ``kv.data``), everything else names its tree.
    """

    __slots__ = (
        "_data",
        "_events",
        "_lease_keys",
        "_lease_overlay",
        "_leases",
        "_lk_overlay",
        "_sub",
        "batch",
        "compact_to",
        "compacted",
        "event_bytes",
        "event_sizes",
        "events",
        "floor",
        "leases_granted",
        "leases_revoked",
        "overlay",
        "revision",
    )

    def __init__(
        self,
        data: Tree,
        events: Tree,
        leases: Tree,
        lease_keys: Tree,
        revision: int,
        *,
        floor: int = 1,
        compacted: int = 0,
    ) -> None:
        self._data = data
        self._events = events
        self._leases = leases
        self._lease_keys = lease_keys
        self.batch = Batch()
        self.revision = revision
        self._sub = -1  # -1: outside a transaction
        self.overlay: dict[bytes, KeyRecord | None] = {}
        self.events: list[WatchEvent] = []
        self.event_bytes = 0
        self.event_sizes: list[int] = []
        self._lease_overlay: dict[int, int | None] = {}
        self._lk_overlay: dict[bytes, bool] = {}
        self.leases_granted: dict[int, int] = {}
        self.leases_revoked: list[int] = []
        self.compact_to = 0
        self.floor = floor  # the oldest retained event's main revision
        self.compacted = compacted  # the last etcd Compact's revision (0: none)

    # --- transactions ---------------------------------------------------------------

    def begin(self) -> None:
        """Start a transaction (one command)."""
        self._sub = 0

    def end(self) -> bool:
        """Finish the transaction; True if it wrote (and so took revision + 1)."""
        wrote = self._sub > 0
        if wrote:
            self.revision += 1
        self._sub = -1
        return wrote

    @property
    def pending_revision(self) -> int:
        """The main revision the current transaction's writes get."""
        return self.revision + 1

    @property
    def wrote(self) -> bool:
        """Whether the current transaction has written anything yet."""
        return self._sub > 0

    # --- reads ------------------------------------------------------------------------

    def get(self, key: bytes) -> KeyRecord | None:
        """``key``'s current record, pending writes included."""
        if key in self.overlay:
            return self.overlay[key]
        raw = self._data.get(key)
        return None if raw is None else decode_record(raw)

    def range_keys(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, KeyRecord]]:
        """(key, record) for keys in ``[start, end)`` (``end`` None: no bound), in key order."""
        pending = sorted(
            k for k in self.overlay if k >= start and (end is None or k < end)
        )
        stored = self._data.range(start, end)
        nxt = next(stored, None)
        for k in pending:
            while nxt is not None and nxt[0] < k:
                yield nxt[0], decode_record(nxt[1])
                nxt = next(stored, None)
            if nxt is not None and nxt[0] == k:
                nxt = next(stored, None)
            rec = self.overlay[k]
            if rec is not None:
                yield k, rec
        while nxt is not None:
            yield nxt[0], decode_record(nxt[1])
            nxt = next(stored, None)

    @property
    def read_floor(self) -> int:
        """The oldest revision a read can be made at (reads need the changes after it)."""
        return max(self.compacted, self.floor - 1)

    def changes_after(self, revision: int) -> Iterator[tuple[bytes, KeyRecord | None]]:
        """(key, state before the change) for every change after ``revision``, oldest first."""
        for raw_key, raw in self._events.range(event_key(revision + 1, 0), None):
            main, _ = split_event_key(raw_key)
            key, _, prev = decode_event(raw, main)
            yield key, prev
        for event in self.events:
            if event.revision > revision:
                yield event.key, event.prev

    def compact(self, revision: int) -> None:
        """Drop history below ``revision`` at the end of the pass (an etcd Compact)."""
        self.compact_to = revision
        self.compacted = revision
        self.floor = max(self.floor, revision)

    # --- writes ------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes, lease: int, prev: KeyRecord | None) -> KeyRecord:
        """Write ``value`` at ``key`` (``prev``: its current record, from :meth:`get`)."""
        main = self.revision + 1
        if prev is None:
            rec = KeyRecord(value, main, main, 1, lease)
        else:
            rec = KeyRecord(value, main, prev.create, prev.version + 1, lease)
        self.batch.insert(key, encode_record(value, main, rec.create, rec.version, lease))
        self._index_lease(key, prev.lease if prev is not None else 0, lease)
        self._event(key, rec, prev)
        return rec

    def delete(self, key: bytes, prev: KeyRecord) -> None:
        """Delete ``key`` (``prev``: its current record, which must exist)."""
        self.batch.remove(key)
        self._index_lease(key, prev.lease, 0)
        self._event(key, None, prev)

    def _event(self, key: bytes, new: KeyRecord | None, prev: KeyRecord | None) -> None:
        if self._sub < 0:
            raise RuntimeError("a write outside a transaction")
        main, sub = self.revision + 1, self._sub
        self._sub += 1
        encoded = encode_event(key, new, prev)
        self.batch.insert(event_key(main, sub), encoded, tree=self._events)
        size = event_size(encoded)
        self.event_bytes += size
        self.event_sizes.append(size)
        self.overlay[key] = new
        if new is None:
            self.events.append(WatchEvent(main, key, None, sub, 0, 0, 0, prev))
        else:
            self.events.append(
                WatchEvent(main, key, new.value, sub, new.create, new.version, new.lease, prev)
            )

    # --- leases ------------------------------------------------------------------------

    def _index_lease(self, key: bytes, old: int, new: int) -> None:
        if old == new:
            return
        if old:
            entry = lease_key(old, key)
            self.batch.remove(entry, tree=self._lease_keys)
            self._lk_overlay[entry] = False
        if new:
            entry = lease_key(new, key)
            self.batch.insert(entry, b"", tree=self._lease_keys)
            self._lk_overlay[entry] = True

    def lease_ttl(self, lease: int) -> int | None:
        """The granted TTL of ``lease`` (None: no such lease), pending writes included."""
        if lease in self._lease_overlay:
            return self._lease_overlay[lease]
        raw = self._leases.get(_LEASE_KEY.pack(lease))
        return None if raw is None else decode_u64(raw)

    def grant_lease(self, lease: int, ttl: int) -> None:
        """Record a new lease (no revision: leases are not keys)."""
        self.batch.insert(_LEASE_KEY.pack(lease), encode_u64(ttl), tree=self._leases)
        self._lease_overlay[lease] = ttl
        self.leases_granted[lease] = ttl

    def lease_keys(self, lease: int) -> list[bytes]:
        """Keys attached to ``lease``, pending writes included, in key order."""
        prefix = _LEASE_KEY.pack(lease)
        found = {k for k, _ in self._lease_keys.scan_prefix(prefix)}
        for entry, present in self._lk_overlay.items():
            if entry.startswith(prefix):
                if present:
                    found.add(entry)
                else:
                    found.discard(entry)
        return sorted(k[len(prefix) :] for k in found)

    def revoke_lease(self, lease: int) -> None:
        """Forget ``lease``; the caller deletes its keys (within the same transaction)."""
        self.batch.remove(_LEASE_KEY.pack(lease), tree=self._leases)
        self._lease_overlay[lease] = None
        self.leases_granted.pop(lease, None)
        self.leases_revoked.append(lease)
