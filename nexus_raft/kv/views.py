"""ReadView: a consistent view of the KV state for reads at the current or a past revision.

Everything a view answers comes from one store snapshot, so a Range's
records, its count and the revision in its header agree even while applies
go on. A read at a past revision ``R`` starts from the current records and
undoes every retained change after ``R`` (each event holds the key's
previous state); it is refused as compacted when the changes after ``R``
are no longer all retained or ``R`` is below the last etcd Compact.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from types import TracebackType

from nexus_raft.errors import Compacted, InvalidArgument
from nexus_raft.kv.records import (
    KeyRecord,
    decode_event,
    decode_record,
    decode_u64,
    event_key,
    split_event_key,
)
from nexus_raft.storage.snapshot import Snapshot

__all__ = ["FutureRevision", "ReadView"]

Item = tuple[bytes, KeyRecord]
_LEASE = struct.Struct(">Q")


class FutureRevision(InvalidArgument):
    """A read asked for a revision the store has not reached."""


class ReadView:
    """Reads from one snapshot; ``close()`` (or ``with``) releases it."""

    def __init__(
        self, snap: Snapshot, data: str, meta: str, events: str, leases: str, lease_keys: str
    ) -> None:
        self._snap = snap
        self._data = snap.tree(data)
        self._events = snap.tree(events)
        self._leases = snap.tree(leases)
        self._lease_keys = snap.tree(lease_keys)
        m = snap.tree(meta)

        def u64(key: bytes, default: int) -> int:
            raw = m.get(key)
            return decode_u64(raw) if raw is not None else default

        self.revision = u64(b"revision", 0)
        """The main revision of the view."""
        self.floor = u64(b"ev-floor", 1)
        self.compacted = u64(b"compact-rev", 0)

    @property
    def read_floor(self) -> int:
        """The oldest revision a read can be made at."""
        return max(self.compacted, self.floor - 1)

    def get(self, key: bytes) -> KeyRecord | None:
        """``key``'s record in the view."""
        raw = self._data.get(key)
        return None if raw is None else decode_record(raw)

    def items(self, start: bytes, end: bytes | None) -> Iterator[Item]:
        """(key, record) in ``[start, end)`` at the view's revision, in key order."""
        for key, raw in self._data.range(start, end):
            yield key, decode_record(raw)

    def changes_after(self, revision: int) -> Iterator[tuple[bytes, KeyRecord | None]]:
        """(key, state before) of every retained change after ``revision``, oldest first."""
        for raw_key, raw in self._events.range(event_key(revision + 1, 0), None):
            main, _ = split_event_key(raw_key)
            key, _, prev = decode_event(raw, main)
            yield key, prev

    def check_revision(self, revision: int) -> None:
        """Refuse a read at ``revision`` that is in the future or compacted."""
        if revision > self.revision:
            raise FutureRevision(
                f"revision {revision} is in the future (the store is at {self.revision})"
            )
        if 0 < revision < self.read_floor:
            raise Compacted(
                f"revision {revision} is compacted (reads start at {self.read_floor})",
                revision=self.read_floor,
            )

    # --- leases ---------------------------------------------------------------------

    def leases(self) -> dict[int, int]:
        """Every granted lease: id -> TTL seconds."""
        return {_LEASE.unpack(k)[0]: decode_u64(v) for k, v in self._leases.iter()}

    def lease_ttl(self, lease: int) -> int | None:
        """``lease``'s granted TTL (None: no such lease)."""
        raw = self._leases.get(_LEASE.pack(lease))
        return None if raw is None else decode_u64(raw)

    def lease_keys(self, lease: int) -> list[bytes]:
        """The keys attached to ``lease``, in key order."""
        prefix = _LEASE.pack(lease)
        return [k[len(prefix) :] for k, _ in self._lease_keys.scan_prefix(prefix)]

    def close(self) -> None:
        """Release the snapshot; idempotent."""
        self._snap.close()

    def __enter__(self) -> ReadView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
