"""Store lifecycle, the default tree, persistence, ids, flush and locking."""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path

import pytest

from nexus_raft.errors import StorageError, StoreClosedError, StoreLockedError
from nexus_raft.storage import DEFAULT_TREE, ID_BLOCK, Store


def test_default_tree_set_get_delete_contains(store: Store) -> None:
    assert store.get(b"k") is None
    assert not store.contains(b"k")
    assert b"k" not in store
    store.set(b"k", b"v")
    assert store.get(b"k") == b"v"
    assert store.contains("k")
    assert "k" in store
    store.delete("k")
    assert store.get(b"k") is None
    store.delete(b"never-there")  # deleting an absent key is fine


def test_default_tree_is_the_tree_named_default(store: Store) -> None:
    store.set(b"k", b"v")
    assert store.tree() is store.tree(DEFAULT_TREE)
    assert store.tree(DEFAULT_TREE).get(b"k") == b"v"
    assert store.tree_names() == [DEFAULT_TREE]


def test_str_keys_are_utf8(store: Store) -> None:
    store.set("clé", b"1")
    assert store.get("clé".encode()) == b"1"


def test_values_bytearray_and_memoryview_stored_as_bytes(store: Store) -> None:
    store.set(b"a", bytearray(b"xy"))
    store.set(b"b", memoryview(b"abcdef")[1:3])
    assert store.get(b"a") == b"xy" and type(store.get(b"a")) is bytes
    assert store.get(b"b") == b"bc" and type(store.get(b"b")) is bytes


def test_empty_key_and_value(store: Store) -> None:
    store.set(b"", b"")
    assert store.get(b"") == b""
    assert store.contains(b"")


def test_reopen_keeps_data_trees_and_values(store_path: Path) -> None:
    with Store.open(store_path) as s:
        s.set(b"k", b"v")
        s.tree("users").set("alice", b"1")
        s.tree("users").set_json("bob", {"admin": True})
    with Store.open(str(store_path)) as s:
        assert s.get(b"k") == b"v"
        assert s.tree_names() == ["default", "users"]
        assert s.tree("users").get("alice") == b"1"
        assert s.tree("users").get_json("bob") == {"admin": True}


def test_context_manager_closes(store_path: Path) -> None:
    with Store.open(store_path) as s:
        assert not s.closed
    assert s.closed


def test_close_is_idempotent_and_then_everything_raises(store: Store) -> None:
    tree = store.tree("t")
    tree.set(b"a", b"1")
    it = tree.iter()
    assert next(it) == (b"a", b"1")
    lazy = store.tree("t").scan_prefix(b"")
    store.close()
    store.close()
    assert store.closed
    calls = [
        lambda: store.get(b"k"),
        lambda: store.set(b"k", b"v"),
        lambda: store.delete(b"k"),
        lambda: store.contains(b"k"),
        lambda: store.tree("t"),
        lambda: store.tree("new"),
        store.tree_names,
        lambda: store.drop_tree("t"),
        store.flush,
        store.generate_id,
        store.snapshot,
        store.compact,
        lambda: tree.get(b"a"),
        lambda: tree.set(b"a", b"2"),
        lambda: tree.delete(b"a"),
        lambda: tree.compare_and_swap(b"a", None, b"x"),
        lambda: tree.fetch_and_update(b"a", lambda v: v),
        lambda: list(tree.iter()),
        lambda: tree.first(),
        lambda: tree.watch_prefix(b""),
        lambda: next(it),
        lambda: next(lazy),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()


def test_second_open_in_same_process_is_locked(store: Store, store_path: Path) -> None:
    with pytest.raises(StoreLockedError):
        Store.open(store_path)
    store.set(b"still", b"usable")  # the failed open must not disturb the first
    assert store.get(b"still") == b"usable"


def test_lock_released_on_close(store_path: Path) -> None:
    Store.open(store_path).close()
    with Store.open(store_path) as s:
        assert s.tree_names() == ["default"]


def test_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a" / "b" / "store") as s:
        s.set(b"k", b"v")
    with Store.open(tmp_path / "a" / "b" / "store", create=False) as s:
        assert s.get(b"k") == b"v"


def test_open_on_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StorageError, match="cannot create store directory"):
        Store.open(tmp_path / "file")


def test_open_without_create_on_missing_path(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no store"):
        Store.open(tmp_path / "missing", create=False)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(StorageError, match="no store"):
        Store.open(empty, create=False)


def test_open_temporary_is_removed_on_close() -> None:
    store = Store.open_temporary()
    path = store.path
    store.set(b"k", b"v")
    assert os.path.isdir(path)
    store.close()
    assert not os.path.exists(path)


def test_sync_store_reads_back(store_path: Path) -> None:
    with Store.open(store_path, sync=True) as s:
        assert s.sync
        s.set(b"k", b"v")
        s.tree("t").delete(b"k")
        assert s.get(b"k") == b"v"


def test_flush_then_reopen(store_path: Path) -> None:
    with Store.open(store_path) as s:
        s.set(b"k", b"v")
        s.flush()
    with Store.open(store_path) as s:
        assert s.get(b"k") == b"v"


def test_generate_id_strictly_increasing_across_reopen(store_path: Path) -> None:
    seen: list[int] = []
    for _ in range(3):
        with Store.open(store_path) as s:
            seen.extend(s.generate_id() for _ in range(ID_BLOCK + 5))
    assert all(a < b for a, b in itertools.pairwise(seen))


def test_generate_id_unique_across_threads(store: Store) -> None:
    results: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(out: list[int]) -> None:
        barrier.wait()
        out.extend(store.generate_id() for _ in range(500))

    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for r in results for i in r]
    assert len(set(ids)) == 8 * 500
    for r in results:  # each thread sees its own ids increase
        assert r == sorted(r)


def test_compact_keeps_data(store: Store) -> None:
    for i in range(100):
        store.set(b"%03d" % i, b"x" * 100)
    store.compact()
    assert store.tree().count() == 100


def test_repr_mentions_path_and_state(store: Store) -> None:
    assert store.path in repr(store) and "open" in repr(store)
