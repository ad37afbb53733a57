"""On-disk key layout of a store.

Every LevelDB key is ``tree_id (4 bytes, big-endian) + user key``. Tree ids
come from a catalog, never from the tree's name, so tree ``a`` and tree ``ab``
have unrelated, fixed-length prefixes and can never see each other's keys.

Tree id 0 is the internal namespace (catalog, counters, markers); id 1 is the
default tree; user trees get 2, 3, ... in creation order. Ids are never reused,
so a dropped tree's leftover keys (if a crash interrupted the purge) can never
reappear inside a new tree; the ``dropping`` marker makes the next open finish
the purge.
"""

from __future__ import annotations

import struct

ID_LEN = 4
INTERNAL_ID = 0
DEFAULT_TREE_ID = 1
FIRST_USER_TREE_ID = 2
# The all-0xff id is never handed out, so every tree prefix has a finite upper bound.
MAX_TREE_ID = 0xFFFF_FFFE

DEFAULT_TREE = "default"
FORMAT_VERSION = b"1"

_ID = struct.Struct(">I")
_U64 = struct.Struct(">Q")

INTERNAL = _ID.pack(INTERNAL_ID)
FORMAT_KEY = INTERNAL + b"meta:format"
NEXT_TREE_KEY = INTERNAL + b"meta:next-tree"
ID_HWM_KEY = INTERNAL + b"meta:id-high-water"
FLUSH_KEY = INTERNAL + b"meta:flush"
CATALOG_PREFIX = INTERNAL + b"catalog:"
DROPPING_PREFIX = INTERNAL + b"dropping:"


def tree_prefix(tree_id: int) -> bytes:
    """The fixed-length key prefix of tree ``tree_id``."""
    return _ID.pack(tree_id)


def decode_tree_id(raw: bytes) -> int:
    """Inverse of :func:`tree_prefix`; raises ``struct.error`` on a bad length."""
    value: int = _ID.unpack(raw)[0]
    return value


def catalog_key(name: str) -> bytes:
    """Where the catalog keeps the id of tree ``name``."""
    return CATALOG_PREFIX + name.encode("utf-8")


def dropping_key(tree_id: int) -> bytes:
    """Marker present while tree ``tree_id``'s keys are being purged."""
    return DROPPING_PREFIX + _ID.pack(tree_id)


def pack_u64(value: int) -> bytes:
    """Big-endian unsigned 64-bit encoding (counters)."""
    return _U64.pack(value)


def unpack_u64(raw: bytes) -> int:
    """Inverse of :func:`pack_u64`; raises ``struct.error`` on a bad length."""
    value: int = _U64.unpack(raw)[0]
    return value
