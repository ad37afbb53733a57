"""Binary encodings of the durable Raft log's keys and values.

Tree ``raft.log``: key = index as 8-byte big-endian (so LevelDB's byte order
is index order and the last key is the last index), value =
``term:u64 type:u8 has_data:u8`` followed by the payload. ``has_data`` 0 is
a witness's metadata-only copy (``Entry.data is None``), distinct from an
empty payload (the leader's no-op), which has ``has_data`` 1 and no bytes.

Tree ``raft.meta``: fixed keys below, each a small struct. Configuration
entries still in the log are listed under ``CONF_PREFIX + index`` so a
restart can rebuild the current configuration without scanning the log.
"""

from __future__ import annotations

import struct

from nexus_raft.consensus.core.messages import ConfState, Entry, EntryType, HardState, SnapshotMeta
from nexus_raft.errors import CorruptionError

__all__ = [
    "CONF_PREFIX",
    "FLOOR_KEY",
    "HARD_KEY",
    "SNAP_KEY",
    "conf_key",
    "decode_entry",
    "decode_hard_state",
    "decode_index",
    "decode_snapshot",
    "decode_u64",
    "encode_entry",
    "encode_hard_state",
    "encode_index",
    "encode_snapshot",
    "encode_u64",
]

HARD_KEY = b"hard"
SNAP_KEY = b"snap"
FLOOR_KEY = b"payload-floor"
CONF_PREFIX = b"conf:"

_U64 = struct.Struct(">Q")
_ENTRY = struct.Struct(">QBB")
_HARD = struct.Struct(">QQQ")
_SNAP = struct.Struct(">QQIII")
_TYPES = tuple(EntryType)


def encode_index(index: int) -> bytes:
    """The ``raft.log`` key of ``index``."""
    return _U64.pack(index)


def decode_index(key: bytes) -> int:
    """Inverse of :func:`encode_index`."""
    if len(key) != 8:
        raise CorruptionError(f"raft.log key of {len(key)} bytes")
    value: int = _U64.unpack(key)[0]
    return value


encode_u64 = encode_index
decode_u64 = decode_index


def conf_key(index: int) -> bytes:
    """The ``raft.meta`` marker of the configuration entry at ``index``."""
    return CONF_PREFIX + _U64.pack(index)


def encode_entry(entry: Entry) -> bytes:
    """The ``raft.log`` value of ``entry`` (its index is the key)."""
    if entry.data is None:
        return _ENTRY.pack(entry.term, int(entry.type), 0)
    return _ENTRY.pack(entry.term, int(entry.type), 1) + entry.data


def decode_entry(index: int, raw: bytes) -> Entry:
    """Inverse of :func:`encode_entry`; CorruptionError on a damaged value."""
    if len(raw) < _ENTRY.size:
        raise CorruptionError(f"raft.log entry {index} is truncated")
    term, kind, has_data = _ENTRY.unpack_from(raw)
    if kind >= len(_TYPES) or has_data > 1:
        raise CorruptionError(f"raft.log entry {index} has a bad header")
    if has_data:
        return Entry(index, term, _TYPES[kind], raw[_ENTRY.size :])
    if len(raw) != _ENTRY.size:
        raise CorruptionError(f"raft.log entry {index} has bytes but no data flag")
    return Entry(index, term, _TYPES[kind], None)


def encode_hard_state(hs: HardState) -> bytes:
    """The ``raft.meta`` value under :data:`HARD_KEY`."""
    return _HARD.pack(hs.term, hs.vote, hs.commit)


def decode_hard_state(raw: bytes) -> HardState:
    """Inverse of :func:`encode_hard_state`."""
    if len(raw) != _HARD.size:
        raise CorruptionError("raft.meta hard state has a bad size")
    return HardState(*_HARD.unpack(raw))


def encode_snapshot(meta: SnapshotMeta) -> bytes:
    """The ``raft.meta`` value under :data:`SNAP_KEY`: index, term and configuration."""
    cs = meta.conf_state
    groups = (sorted(cs.voters), sorted(cs.learners), sorted(cs.witnesses))
    head = _SNAP.pack(meta.index, meta.term, *(len(g) for g in groups))
    ids = [i for g in groups for i in g]
    return head + struct.pack(f">{len(ids)}Q", *ids)


def decode_snapshot(raw: bytes) -> SnapshotMeta:
    """Inverse of :func:`encode_snapshot`."""
    if len(raw) < _SNAP.size:
        raise CorruptionError("raft.meta snapshot record is truncated")
    index, term, nv, nl, nw = _SNAP.unpack_from(raw)
    count = nv + nl + nw
    if len(raw) != _SNAP.size + 8 * count:
        raise CorruptionError("raft.meta snapshot record has a bad size")
    ids = struct.unpack_from(f">{count}Q", raw, _SNAP.size)
    try:
        cs = ConfState(frozenset(ids[:nv]), frozenset(ids[nv : nv + nl]), frozenset(ids[nv + nl :]))
    except ValueError as exc:
        raise CorruptionError(f"raft.meta snapshot configuration is invalid: {exc}") from None
    return SnapshotMeta(index, term, cs)
