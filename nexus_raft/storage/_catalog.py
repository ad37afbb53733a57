"""Reading and initialising the internal namespace (catalog, counters, drop markers).

Called once per open. Plyvel errors are left to the caller (``Store.open``),
which maps them; malformed internal records become ``CorruptionError`` here.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

from nexus_raft.errors import CorruptionError
from nexus_raft.storage._layout import (
    CATALOG_PREFIX,
    DEFAULT_TREE,
    DEFAULT_TREE_ID,
    DROPPING_PREFIX,
    FIRST_USER_TREE_ID,
    FORMAT_KEY,
    FORMAT_VERSION,
    ID_HWM_KEY,
    NEXT_TREE_KEY,
    catalog_key,
    decode_tree_id,
    dropping_key,
    tree_prefix,
    unpack_u64,
)

log = logging.getLogger(__name__)

# Deletes per write batch when purging a dropped tree: bounds memory use.
PURGE_CHUNK = 10_000


@dataclass
class CatalogState:
    """What ``Store`` needs from disk at open time."""

    trees: dict[str, int]
    next_tree_id: int
    id_high_water: int


def load_or_init(db: Any, path: str) -> CatalogState:
    """Read the catalog of the store in ``db``; initialise it if the DB is new.

    Also finishes any tree purge a crash interrupted. Raises CorruptionError if
    ``db`` is a non-empty LevelDB database that this package did not create,
    or if an internal record is malformed.
    """
    version = db.get(FORMAT_KEY)
    if version is None:
        if next(db.iterator(include_value=False), None) is not None:
            raise CorruptionError(f"{path} is a LevelDB database but not a nexus_raft store")
        with db.write_batch(sync=True) as wb:
            wb.put(FORMAT_KEY, FORMAT_VERSION)
            wb.put(catalog_key(DEFAULT_TREE), tree_prefix(DEFAULT_TREE_ID))
            wb.put(NEXT_TREE_KEY, tree_prefix(FIRST_USER_TREE_ID))
    elif version != FORMAT_VERSION:
        raise CorruptionError(f"{path}: unsupported store format {version!r}")
    try:
        trees = {
            key[len(CATALOG_PREFIX):].decode("utf-8"): decode_tree_id(raw)
            for key, raw in db.iterator(prefix=CATALOG_PREFIX)
        }
        next_raw = db.get(NEXT_TREE_KEY)
        if next_raw is None or DEFAULT_TREE not in trees:
            raise CorruptionError(f"{path}: the tree catalog is incomplete")
        next_tree_id = decode_tree_id(next_raw)
        hwm_raw = db.get(ID_HWM_KEY)
        id_high_water = 0 if hwm_raw is None else unpack_u64(hwm_raw)
        pending = [decode_tree_id(key[len(DROPPING_PREFIX):])
                   for key in db.iterator(prefix=DROPPING_PREFIX, include_value=False)]
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptionError(f"{path}: malformed internal record: {exc}") from exc
    for tree_id in pending:
        log.info("finishing the interrupted drop of tree id %d in %s", tree_id, path)
        purge_tree(db, tree_id)
    return CatalogState(trees, next_tree_id, id_high_water)


def purge_tree(db: Any, tree_id: int) -> None:
    """Delete every key of tree ``tree_id``, then its ``dropping`` marker.

    The marker is written (with the catalog removal) before the purge starts,
    so a crash part-way leaves the marker and the next open resumes here.
    """
    prefix = tree_prefix(tree_id)
    while True:
        count = 0
        with db.write_batch() as wb:
            for key in db.iterator(prefix=prefix, include_value=False):
                wb.delete(key)
                count += 1
                if count >= PURGE_CHUNK:
                    break
        if count < PURGE_CHUNK:
            break
    db.delete(dropping_key(tree_id), sync=True)
