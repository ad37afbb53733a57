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
    MAX_TREE_ID,
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
    _check_consistent(path, trees, next_tree_id, pending)
    for tree_id in pending:
        log.info("finishing the interrupted drop of tree id %d in %s", tree_id, path)
        purge_tree(db, tree_id)
    return CatalogState(trees, next_tree_id, id_high_water)


def _check_consistent(
    path: str, trees: dict[str, int], next_tree_id: int, pending: list[int]
) -> None:
    """Refuse a catalog that would mix trees' keys or purge live data.

    Every record may decode and still be wrong: two names on one id would
    share keys, a name on the internal id would overwrite the catalog, a next
    id at or below a live one would hand out a used prefix, and a drop marker
    on a live (or the default, or the internal) id would purge live data at
    this very open (found by tests/fuzz/test_catalog.py).
    """
    ids = sorted(trees.values())
    if trees.get(DEFAULT_TREE) != DEFAULT_TREE_ID:
        raise CorruptionError(f"{path}: the default tree is not tree id {DEFAULT_TREE_ID}")
    if len(set(ids)) != len(ids):
        raise CorruptionError(f"{path}: two trees share one id in the catalog")
    if ids[0] < DEFAULT_TREE_ID or ids[-1] > MAX_TREE_ID:
        raise CorruptionError(f"{path}: a tree id in the catalog is out of range")
    if not max(ids[-1] + 1, FIRST_USER_TREE_ID) <= next_tree_id <= MAX_TREE_ID + 1:
        raise CorruptionError(f"{path}: next tree id {next_tree_id} would reuse a live id")
    live = set(ids)
    for tree_id in pending:
        if tree_id < FIRST_USER_TREE_ID or tree_id in live or tree_id >= next_tree_id:
            raise CorruptionError(
                f"{path}: a drop marker names tree id {tree_id}, not a dropped tree"
            )


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
