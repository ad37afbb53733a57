"""Error mapping, on-disk format checks and codec helpers."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from nexus_raft.errors import (
    CorruptionError,
    NexusRaftError,
    StorageError,
    StoreClosedError,
    StoreLockedError,
)
from nexus_raft.storage import Store
from nexus_raft.storage._backend import backend_error
from nexus_raft.storage._codec import prefix_upper_bound
from nexus_raft.storage._layout import FORMAT_KEY, NEXT_TREE_KEY, catalog_key


def test_plain_leveldb_database_is_refused(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "other"), create_if_missing=True)
    db.put(b"someone else's", b"data")
    db.close()
    with pytest.raises(CorruptionError, match="not a nexus_raft store"):
        Store.open(tmp_path / "other")
    # The refused database is untouched and not left locked.
    db = plyvel.DB(str(tmp_path / "other"))
    assert list(db.iterator()) == [(b"someone else's", b"data")]
    db.close()


def test_unknown_format_version_is_refused(store_path: Path) -> None:
    Store.open(store_path).close()
    db = plyvel.DB(str(store_path))
    db.put(FORMAT_KEY, b"99")
    db.close()
    with pytest.raises(CorruptionError, match="unsupported store format"):
        Store.open(store_path)


@pytest.mark.parametrize(
    ("key", "value"),
    [(catalog_key("bad"), b"\x00\x01"), (catalog_key("default"), b"xx"), (NEXT_TREE_KEY, b"")],
)
def test_malformed_internal_records_are_corruption(
    store_path: Path, key: bytes, value: bytes
) -> None:
    Store.open(store_path).close()
    db = plyvel.DB(str(store_path))
    db.put(key, value)
    db.close()
    with pytest.raises(CorruptionError):
        Store.open(store_path)


def test_missing_catalog_is_corruption(store_path: Path) -> None:
    Store.open(store_path).close()
    db = plyvel.DB(str(store_path))
    db.delete(catalog_key("default"))
    db.close()
    with pytest.raises(CorruptionError, match="incomplete"):
        Store.open(store_path)


def test_backend_error_mapping() -> None:
    lock = plyvel.IOError(b"IO error: lock /x/LOCK: already held by process")
    assert isinstance(backend_error(lock, "/x"), StoreLockedError)
    assert isinstance(backend_error(plyvel.CorruptionError(b"bad block")), CorruptionError)
    io = backend_error(plyvel.IOError(b"IO error: No space left on device"))
    assert type(io) is StorageError and "No space left" in str(io)
    assert isinstance(backend_error(RuntimeError("Database is closed")), StoreClosedError)
    other = RuntimeError("something else")
    assert backend_error(other) is other  # not ours to disguise
    for exc in (lock, plyvel.Error(b"x")):
        assert isinstance(backend_error(exc), NexusRaftError)


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"ab") == b"ac"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"a\xff\xff") == b"b"
    assert prefix_upper_bound(b"\x00\x00\x00\x01") == b"\x00\x00\x00\x02"
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"") is None


def _table_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.ldb"))


def test_store_writes_uncompressed_tables(store_path: Path) -> None:
    store = Store.open(store_path)
    values = {b"k%03d" % i: b"x" * 4096 for i in range(64)}  # 256 KiB, snappy shrinks it ~20x
    for key, value in values.items():
        store.set(key, value)
    store.compact()  # memtable -> table files
    store.close()
    assert _table_bytes(store_path) >= 64 * 4096


def test_store_written_with_snappy_tables_still_opens_and_reads(store_path: Path) -> None:
    store = Store.open(store_path)
    values = {b"k%03d" % i: b"y" * 4096 for i in range(64)}
    for key, value in values.items():
        store.set(key, value)
    store.close()
    # An older nexus_raft wrote snappy blocks: rewrite every table that way.
    db = plyvel.DB(str(store_path), compression="snappy")
    db.compact_range()
    db.close()
    assert 0 < _table_bytes(store_path) < 64 * 4096 // 4
    store = Store.open(store_path)
    try:
        assert {k: store.get(k) for k in values} == values
        store.set(b"new", b"z" * 4096)  # and new writes still go through
        assert store.get(b"new") == b"z" * 4096
    finally:
        store.close()
