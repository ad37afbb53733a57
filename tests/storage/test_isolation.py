"""Trees are isolated key spaces; dropping one touches nothing else."""

from __future__ import annotations

from pathlib import Path

import plyvel
import pytest

from nexus_raft.errors import StorageError
from nexus_raft.storage import Batch, Store
from nexus_raft.storage._layout import catalog_key, dropping_key


def test_tree_a_never_sees_tree_ab(store: Store) -> None:
    a, ab = store.tree("a"), store.tree("ab")
    a.set(b"x", b"from-a")
    ab.set(b"x", b"from-ab")
    ab.set(b"", b"ab-empty-key")
    assert a.get(b"x") == b"from-a" and ab.get(b"x") == b"from-ab"
    assert list(a.iter()) == [(b"x", b"from-a")]
    assert list(ab.iter()) == [(b"", b"ab-empty-key"), (b"x", b"from-ab")]
    assert list(a.scan_prefix(b"")) == [(b"x", b"from-a")]
    assert a.get(b"") is None


def test_default_tree_does_not_see_named_trees(store: Store) -> None:
    store.tree("t").set(b"k", b"v")
    assert store.get(b"k") is None
    assert list(store.tree().iter()) == []


def test_ff_keys_stay_inside_their_tree(store: Store) -> None:
    # Tree ids are consecutive, so tree 1's \xff keys sit right before tree 2's.
    first, second = store.tree("first"), store.tree("second")
    first.set(b"\xff" * 8, b"1")
    first.set(b"\xff", b"2")
    second.set(b"\x00", b"3")
    assert [k for k, _ in first.iter()] == [b"\xff", b"\xff" * 8]
    assert [k for k, _ in first.iter(reverse=True)] == [b"\xff" * 8, b"\xff"]
    assert [k for k, _ in first.scan_prefix(b"\xff")] == [b"\xff", b"\xff" * 8]
    assert [k for k, _ in first.scan_prefix(b"\xff\xff", reverse=True)] == [b"\xff" * 8]
    assert [k for k, _ in first.range(b"\xff", None)] == [b"\xff", b"\xff" * 8]
    assert first.last() == (b"\xff" * 8, b"1")
    assert second.first() == (b"\x00", b"3")
    assert [k for k, _ in second.iter(reverse=True)] == [b"\x00"]


def test_drop_removes_only_that_tree(store: Store, store_path: Path) -> None:
    keep, gone, gone_too = store.tree("keep"), store.tree("gone"), store.tree("gonezo")
    for i in range(50):
        keep.set(b"%02d" % i, b"k")
        gone.set(b"%02d" % i, b"g")
        gone_too.set(b"%02d" % i, b"z")
    store.set(b"d", b"default")
    assert store.drop_tree("gone") is True
    assert store.tree_names() == ["default", "gonezo", "keep"]
    assert keep.count() == 50 and gone_too.count() == 50
    assert store.get(b"d") == b"default"
    assert store.drop_tree("gone") is False
    recreated = store.tree("gone")
    assert recreated is not gone and recreated.count() == 0
    recreated.set(b"new", b"1")
    store.close()
    with Store.open(store_path) as again:
        assert again.tree_names() == ["default", "gone", "gonezo", "keep"]
        assert list(again.tree("gone").iter()) == [(b"new", b"1")]
        assert again.tree("keep").count() == 50


def test_dropped_tree_keys_are_gone_from_disk(store: Store, store_path: Path) -> None:
    t = store.tree("t")
    for i in range(100):
        t.set(b"%03d" % i, b"x")
    prefix = t._prefix
    store.drop_tree("t")
    store.close()
    db = plyvel.DB(str(store_path))
    try:
        assert list(db.iterator(prefix=prefix)) == []
    finally:
        db.close()


def test_dropped_tree_handle_raises(store: Store) -> None:
    t = store.tree("t")
    sub = t.watch_prefix(b"")
    store.drop_tree("t")
    assert sub.closed and sub.get(timeout=0) is None
    for call in (
        lambda: t.get(b"k"),
        lambda: t.set(b"k", b"v"),
        lambda: t.delete(b"k"),
        lambda: list(t.iter()),
        lambda: t.compare_and_swap(b"k", None, b"v"),
        lambda: t.watch_prefix(b""),
        lambda: t.apply_batch(Batch()),
    ):
        with pytest.raises(StorageError, match="dropped"):
            call()
    batch = Batch()
    batch.insert(b"k", b"v", tree=t)
    with pytest.raises(StorageError, match="dropped"):
        store.apply_batch(batch)


def test_default_tree_cannot_be_dropped(store: Store) -> None:
    with pytest.raises(StorageError, match="default tree"):
        store.drop_tree("default")


def test_interrupted_drop_is_finished_on_open(store_path: Path) -> None:
    with Store.open(store_path) as s:
        t = s.tree("t")
        for i in range(30):
            t.set(b"%02d" % i, b"x")
        s.tree("other").set(b"k", b"v")
        prefix, tree_id = t._prefix, t.tree_id
    # Simulate a crash right after the drop's first write: catalog entry gone,
    # marker written, keys still there.
    db = plyvel.DB(str(store_path))
    db.delete(catalog_key("t"))
    db.put(dropping_key(tree_id), b"")
    db.close()
    with Store.open(store_path) as s:
        assert s.tree_names() == ["default", "other"]
        assert s.tree("other").get(b"k") == b"v"
    db = plyvel.DB(str(store_path))
    try:
        assert list(db.iterator(prefix=prefix)) == []
        assert db.get(dropping_key(tree_id)) is None
    finally:
        db.close()
