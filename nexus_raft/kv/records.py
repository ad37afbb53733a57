"""The KV state machine's on-disk records (format 2: MVCC metadata per key and per event).

``kv.data``: key -> :class:`KeyRecord` (value plus etcd's per-key metadata)::

    mod:u64 create:u64 version:u64 lease:i64  value

``kv.events``: (main revision, sub revision) -> one change, with the key's
state after it and before it (``prev``), which is what watches with
``prev_kv`` and reads at a past revision need::

    key:   main:u64 sub:u32
    value: flags:u8 key_len:u32 key
           [put]  create:u64 version:u64 lease:i64 value_len:u32 value
           [prev] create:u64 mod:u64 version:u64 lease:i64 value_len:u32 value

A *main* revision counts write transactions (one per command that changed
something, whatever it changed); the *sub* revision numbers the changes
inside one transaction from 0. ``mod`` of a key is the main revision of its
last change, ``create`` of its creation, ``version`` counts its changes
since creation (a delete resets it), ``lease`` is the attached lease (0:
none). Format 1 (key -> mod + value, event key = revision) is converted by
:mod:`~nexus_raft.kv.migrate`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from nexus_raft.errors import CorruptionError

__all__ = [
    "FORMAT",
    "KeyRecord",
    "decode_event",
    "decode_record",
    "decode_u64",
    "encode_event",
    "encode_record",
    "encode_u64",
    "event_key",
    "event_size",
    "split_event_key",
]

FORMAT = 2
"""The record format this code writes (``kv.meta`` key ``format``)."""

_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">QQQq")  # mod, create, version, lease
_HEAD_SIZE = _HEAD.size
_EVENT_KEY = struct.Struct(">QI")
_EV_HEAD = struct.Struct(">BI")
_EV_PUT = struct.Struct(">QQqI")  # create, version, lease, value_len
_EV_PREV = struct.Struct(">QQQqI")  # create, mod, version, lease, value_len
_F_PUT = 1
_F_PREV = 2


def encode_u64(value: int) -> bytes:
    """Big-endian u64 (applied index, revisions, counters)."""
    return _U64.pack(value)


def decode_u64(raw: bytes) -> int:
    """Inverse of :func:`encode_u64`."""
    if len(raw) != 8:
        raise CorruptionError("kv.* u64 field has a bad size")
    value: int = _U64.unpack(raw)[0]
    return value


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's current value and metadata (``mod``: main revision of its last change)."""

    value: bytes
    mod: int
    create: int
    version: int
    lease: int = 0


def encode_record(value: bytes, mod: int, create: int, version: int, lease: int = 0) -> bytes:
    """A ``kv.data`` value."""
    return _HEAD.pack(mod, create, version, lease) + value


def decode_record(raw: bytes) -> KeyRecord:
    """Inverse of :func:`encode_record`."""
    if len(raw) < _HEAD_SIZE:
        raise CorruptionError("kv.data record is truncated")
    mod, create, version, lease = _HEAD.unpack_from(raw)
    return KeyRecord(raw[_HEAD_SIZE:], mod, create, version, lease)


def event_key(main: int, sub: int) -> bytes:
    """The ``kv.events`` key of change ``sub`` of transaction ``main`` (orders by both)."""
    return _EVENT_KEY.pack(main, sub)


def split_event_key(raw: bytes) -> tuple[int, int]:
    """Inverse of :func:`event_key`."""
    if len(raw) != _EVENT_KEY.size:
        raise CorruptionError("kv.events key has a bad size")
    main, sub = _EVENT_KEY.unpack(raw)
    return int(main), int(sub)


def encode_event(key: bytes, new: KeyRecord | None, prev: KeyRecord | None) -> bytes:
    """A ``kv.events`` value: ``new`` None is a delete; ``prev`` None: the key was absent."""
    parts = [_EV_HEAD.pack((_F_PUT if new is not None else 0) | (_F_PREV if prev else 0),
                           len(key)), key]
    if new is not None:
        parts.append(_EV_PUT.pack(new.create, new.version, new.lease, len(new.value)))
        parts.append(new.value)
    if prev is not None:
        parts.append(_EV_PREV.pack(prev.create, prev.mod, prev.version, prev.lease,
                                   len(prev.value)))
        parts.append(prev.value)
    return b"".join(parts)


def event_size(encoded: bytes) -> int:
    """What one stored event counts against the history's byte bound (value + key)."""
    return len(encoded) + _EVENT_KEY.size


def decode_event(raw: bytes, main: int) -> tuple[bytes, KeyRecord | None, KeyRecord | None]:
    """Inverse of :func:`encode_event`: (key, new state or None, previous state or None).

    ``main`` is the event's main revision (the new state's ``mod``).
    """
    try:
        flags, klen = _EV_HEAD.unpack_from(raw)
        pos = _EV_HEAD.size
        key = raw[pos : pos + klen]
        pos += klen
        new = prev = None
        if flags & _F_PUT:
            create, version, lease, vlen = _EV_PUT.unpack_from(raw, pos)
            pos += _EV_PUT.size
            new = KeyRecord(raw[pos : pos + vlen], main, create, version, lease)
            pos += vlen
        if flags & _F_PREV:
            create, mod, version, lease, vlen = _EV_PREV.unpack_from(raw, pos)
            pos += _EV_PREV.size
            prev = KeyRecord(raw[pos : pos + vlen], mod, create, version, lease)
            pos += vlen
    except struct.error:
        raise CorruptionError("kv.events record is truncated") from None
    if pos != len(raw) or len(key) != klen:
        raise CorruptionError("kv.events record has a bad length")
    return key, new, prev
