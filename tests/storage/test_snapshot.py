"""store.snapshot(): a consistent read view of every tree."""

from __future__ import annotations

import pytest

from nexus_raft.errors import StoreClosedError
from nexus_raft.storage import Batch, Store


def test_snapshot_ignores_later_writes(store: Store) -> None:
    t = store.tree("t")
    t.set(b"a", b"1")
    t.set(b"b", b"2")
    store.set(b"d", b"0")
    with store.snapshot() as snap:
        t.set(b"a", b"changed")
        t.delete(b"b")
        t.set(b"c", b"new")
        store.delete(b"d")
        view = snap.tree("t")
        assert view.name == "t" and "t" in repr(view)
        assert view.get(b"a") == b"1"
        assert view.get("b") == b"2" and view.contains(b"b") and b"b" in view
        assert view.get(b"c") is None
        assert list(view.iter()) == [(b"a", b"1"), (b"b", b"2")]
        assert list(view.iter(reverse=True)) == [(b"b", b"2"), (b"a", b"1")]
        assert list(view) == [(b"a", b"1"), (b"b", b"2")]
        assert snap.tree().get(b"d") == b"0"
    assert t.get(b"a") == b"changed"


def test_snapshot_ranges_prefixes_first_last(store: Store) -> None:
    t = store.tree("t")
    for k in (b"a", b"ab", b"b", b"b\xff", b"b\xff\xff", b"c"):
        t.set(k, k)
    store.tree("t2").set(b"a", b"other tree")
    with store.snapshot() as snap:
        t.set(b"aa", b"late")
        v = snap.tree("t")
        assert [k for k, _ in v.range(b"ab", b"b\xff\xff")] == [b"ab", b"b", b"b\xff"]
        assert [k for k, _ in v.range(None, b"b")] == [b"a", b"ab"]
        assert [k for k, _ in v.range(b"b", None, reverse=True)] == [
            b"c", b"b\xff\xff", b"b\xff", b"b"]
        assert [k for k, _ in v.scan_prefix(b"b\xff")] == [b"b\xff", b"b\xff\xff"]
        assert [k for k, _ in v.scan_prefix(b"a", reverse=True)] == [b"ab", b"a"]
        assert v.first() == (b"a", b"a") and v.last() == (b"c", b"c")
        assert v.count() == 6 and next(v.keys()) == b"a"


def test_snapshot_is_consistent_across_trees(store: Store) -> None:
    a, b = store.tree("a"), store.tree("b")
    batch = Batch()
    batch.insert(b"x", b"1", tree=a)
    batch.insert(b"x", b"1", tree=b)
    store.apply_batch(batch)
    snap = store.snapshot()
    batch = Batch()
    batch.insert(b"x", b"2", tree=a)
    batch.insert(b"x", b"2", tree=b)
    store.apply_batch(batch)
    assert snap.tree("a").get(b"x") == snap.tree("b").get(b"x") == b"1"
    snap.close()


def test_tree_names_and_trees_created_or_dropped_later(store: Store) -> None:
    old = store.tree("old")
    old.set(b"k", b"v")
    snap = store.snapshot()
    store.tree("new").set(b"k", b"v")
    store.drop_tree("old")
    assert snap.tree_names() == ["default", "old"]
    assert list(snap.tree("new").iter()) == []  # did not exist at snapshot time
    assert snap.tree("new").get(b"k") is None
    assert snap.tree("old").get(b"k") == b"v"  # the snapshot still pins it
    snap.close()


def test_json_through_snapshot(store: Store) -> None:
    store.tree("j").set_json(b"k", [1, 2])
    with store.snapshot() as snap:
        assert snap.tree("j").get_json(b"k") == [1, 2]


def test_closed_snapshot_raises(store: Store) -> None:
    store.set(b"k", b"v")
    snap = store.snapshot()
    view = snap.tree()
    snap.close()
    snap.close()  # idempotent
    assert snap.closed
    with pytest.raises(StoreClosedError):
        view.get(b"k")
    with pytest.raises(StoreClosedError):
        list(view.iter())
    with pytest.raises(StoreClosedError):
        snap.tree("t")
    with pytest.raises(StoreClosedError):
        snap.tree_names()


def test_store_close_invalidates_snapshot(store: Store) -> None:
    store.set(b"k", b"v")
    snap = store.snapshot()
    view = snap.tree()
    it = view.iter()
    store.close()
    with pytest.raises(StoreClosedError):
        view.get(b"k")
    with pytest.raises(StoreClosedError):
        next(it)
    snap.close()  # still fine after the store closed
