"""Batch: atomic, invisible until applied, across trees."""

from __future__ import annotations

import pytest

from nexus_raft.errors import StorageError
from nexus_raft.storage import Batch, Store


def test_batch_invisible_until_applied(store: Store) -> None:
    t = store.tree("t")
    t.set(b"old", b"1")
    batch = Batch()
    batch.insert(b"a", b"1")
    batch.insert("b", bytearray(b"2"))
    batch.remove(b"old")
    assert len(batch) == 3
    assert t.get(b"a") is None and t.get(b"old") == b"1"
    assert list(t.iter()) == [(b"old", b"1")]
    t.apply_batch(batch)
    assert list(t.iter()) == [(b"a", b"1"), (b"b", b"2")]


def test_store_apply_batch_defaults_to_default_tree(store: Store) -> None:
    batch = Batch()
    batch.insert(b"k", b"v")
    store.apply_batch(batch)
    assert store.get(b"k") == b"v"


def test_batch_across_trees_by_name_and_handle(store: Store) -> None:
    users = store.tree("users")
    batch = Batch()
    batch.insert(b"k", b"default")
    batch.insert(b"alice", b"1", tree="users")
    batch.insert(b"bob", b"2", tree=users)
    batch.insert(b"x", b"3", tree="created-by-batch")
    batch.remove(b"k", tree="users")
    store.apply_batch(batch)
    assert store.get(b"k") == b"default"
    assert list(users.iter()) == [(b"alice", b"1"), (b"bob", b"2")]
    assert store.tree("created-by-batch").get(b"x") == b"3"


def test_tree_apply_batch_targets_that_tree(store: Store) -> None:
    t = store.tree("t")
    batch = Batch()
    batch.insert(b"k", b"t")
    batch.insert(b"k", b"d", tree="default")
    t.apply_batch(batch)
    assert t.get(b"k") == b"t" and store.get(b"k") == b"d"


def test_later_operations_win(store: Store) -> None:
    batch = Batch()
    batch.insert(b"k", b"1")
    batch.remove(b"k")
    batch.insert(b"j", b"1")
    batch.insert(b"j", b"2")
    store.apply_batch(batch)
    assert store.get(b"k") is None and store.get(b"j") == b"2"


def test_batch_is_reusable_and_clearable(store: Store) -> None:
    batch = Batch()
    batch.insert(b"k", b"1")
    store.apply_batch(batch)
    store.delete(b"k")
    store.apply_batch(batch)
    assert store.get(b"k") == b"1"
    batch.insert(b"x", b"y", tree="t")
    batch.clear()
    assert len(batch) == 0 and batch.ops == []
    store.apply_batch(batch)  # empty batch: no-op
    assert store.tree_names() == ["default"]


def test_ops_lists_operations_in_order(store: Store) -> None:
    t = store.tree("t")
    batch = Batch()
    batch.insert("a", b"1")
    batch.remove(b"b", tree=t)
    batch.insert(b"c", b"3", tree="u")
    assert batch.ops == [(None, b"a", b"1"), (t, b"b", None), ("u", b"c", b"3")]
    assert "3 ops" in repr(batch)


def test_tree_of_another_store_is_refused(store: Store) -> None:
    with Store.open_temporary() as other:
        batch = Batch()
        batch.insert(b"k", b"v", tree=other.tree("t"))
        with pytest.raises(StorageError, match="another store"):
            store.apply_batch(batch)
    assert store.tree_names() == ["default"]


def test_failed_batch_writes_nothing(store: Store) -> None:
    with Store.open_temporary() as other:
        batch = Batch()
        batch.insert(b"first", b"v")
        batch.insert(b"k", b"v", tree=other.tree("t"))
        with pytest.raises(StorageError):
            store.apply_batch(batch)
    assert store.get(b"first") is None


def test_large_batch_applies(store: Store) -> None:
    batch = Batch()
    for i in range(5000):
        batch.insert(b"%05d" % i, b"v")
    store.tree("big").apply_batch(batch)
    assert store.tree("big").count() == 5000
