"""Convert a format-1 KV store (before the etcd API) to format 2 (:mod:`~nexus_raft.kv.records`).

Format 1: ``kv.data`` key -> mod revision u64 + value; ``kv.events``
revision u64 -> put/delete + key + value; revisions were log indexes. The
revisions stay as they are (the counter continues from the last one; etcd's
clients only need revisions to increase). What format 1 did not record is
rebuilt from the retained history: walking it from the oldest event gives
every key changed in it its create revision, its version and, for every
event, the key's previous state. When the history is complete (its floor is
1, nothing was ever trimmed) that is exact; otherwise keys last changed
before the floor get ``create = mod`` and ``version = 1``, the first event
of a key in the history has no previous state, and reads at revisions
before the migration are refused as compacted (``compact-rev``).

Crash safety: the work is done in bounded batches, each one atomic with its
progress marker in ``kv.meta``; a restart resumes where it stopped. Events
are converted first (old keys are 8 bytes, new ones 12, so the tree itself
says which are done), then the data records in key order behind a cursor,
and the last batch writes ``format = 2``.
"""

from __future__ import annotations

import logging
import struct

from nexus_raft.errors import CorruptionError
from nexus_raft.kv.records import (
    FORMAT,
    KeyRecord,
    decode_event,
    decode_u64,
    encode_event,
    encode_record,
    encode_u64,
    event_key,
    event_size,
)
from nexus_raft.storage import Batch, Store, Tree

__all__ = ["needs_migration", "migrate"]

_log = logging.getLogger(__name__)

_OLD_EVENT = struct.Struct(">BI")
_CURSOR = b"migrate-data"
_BATCH_BYTES = 4 << 20


def needs_migration(meta: Tree) -> bool:
    """Whether the store holds format-1 state (written before ``format`` existed)."""
    raw = meta.get(b"format")
    if raw is not None:
        if decode_u64(raw) > FORMAT:
            raise CorruptionError(f"kv format {decode_u64(raw)} is newer than this code's {FORMAT}")
        return decode_u64(raw) < FORMAT
    return meta.get(b"applied") is not None


def _u64(meta: Tree, key: bytes, default: int) -> int:
    raw = meta.get(key)
    return decode_u64(raw) if raw is not None else default


def migrate(store: Store, data: Tree, meta: Tree, events: Tree) -> None:
    """Bring the trees to the current format (resumable; see the module docstring)."""
    floor = _u64(meta, b"ev-floor", 1)
    complete = floor <= 1
    _log.info("migrating the KV store to record format %d (history %s)", FORMAT,
              "complete" if complete else f"from revision {floor}")
    state: dict[bytes, KeyRecord] = {}
    count = size = 0
    batch, pending = Batch(), 0
    for raw_key, raw in events.iter():
        if len(raw_key) == 12:  # converted before a restart
            main = decode_u64(raw_key[:8])
            key, new, _ = decode_event(raw, main)
        else:
            main = decode_u64(raw_key)
            key, new, _, encoded = _convert_event(main, raw, state)
            batch.remove(raw_key, tree=events)
            batch.insert(event_key(main, 0), encoded, tree=events)
            pending += len(encoded) + 20
            raw = encoded
        if new is None:
            state.pop(key, None)
        else:
            state[key] = new
        count += 1
        size += event_size(raw)
        if pending >= _BATCH_BYTES:
            store.apply_batch(batch)
            batch, pending = Batch(), 0
    store.apply_batch(batch)
    cursor = meta.get(_CURSOR)
    batch, pending = Batch(), 0
    start = None if cursor is None else cursor + b"\x00"
    for key, raw in data.range(start, None):
        if len(raw) < 8:
            raise CorruptionError("format-1 kv.data record is truncated")
        mod, value = decode_u64(raw[:8]), raw[8:]
        known = state.get(key)
        if known is not None and known.mod == mod:
            create, version = known.create, known.version
        else:
            create, version = mod, 1
        batch.insert(key, encode_record(value, mod, create, version, 0), tree=data)
        pending += len(key) + len(raw) + 32
        if pending >= _BATCH_BYTES:
            batch.insert(_CURSOR, key, tree=meta)
            store.apply_batch(batch)
            batch, pending = Batch(), 0
    batch.remove(_CURSOR, tree=meta)
    batch.insert(b"ev-count", encode_u64(count), tree=meta)
    batch.insert(b"ev-bytes", encode_u64(size), tree=meta)
    if not complete:
        batch.insert(b"compact-rev", encode_u64(_u64(meta, b"revision", 0)), tree=meta)
    batch.insert(b"format", encode_u64(FORMAT), tree=meta)
    store.apply_batch(batch)
    store.flush()
    _log.info("KV store migrated: %d events, %d keys", count, data.count())


def _convert_event(
    main: int, raw: bytes, state: dict[bytes, KeyRecord]
) -> tuple[bytes, KeyRecord | None, KeyRecord | None, bytes]:
    if len(raw) < _OLD_EVENT.size:
        raise CorruptionError("format-1 kv.events record is truncated")
    has_value, klen = _OLD_EVENT.unpack_from(raw)
    key = raw[_OLD_EVENT.size : _OLD_EVENT.size + klen]
    prev = state.get(key)
    new: KeyRecord | None = None
    if has_value:
        value = raw[_OLD_EVENT.size + klen :]
        if prev is None:
            new = KeyRecord(value, main, main, 1, 0)
        else:
            new = KeyRecord(value, main, prev.create, prev.version + 1, 0)
    return key, new, prev, encode_event(key, new, prev)
