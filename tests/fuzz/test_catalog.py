"""The storage catalog (storage/_catalog.py), read at every ``Store.open``.

Real LevelDB files are written with damaged internal records (format marker,
tree catalog, next tree id, id high-water mark, drop markers) through plyvel
directly, then opened with ``Store.open``. The open must either refuse with
``CorruptionError`` or yield a store whose catalog is consistent: tree ids
unique, never the internal namespace's, all below the next id to hand out,
so a new tree can never share keys with an existing one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import plyvel
from hypothesis import given
from hypothesis import strategies as st

from nexus_raft.errors import CorruptionError
from nexus_raft.storage import Store
from nexus_raft.storage._layout import (
    CATALOG_PREFIX,
    DROPPING_PREFIX,
    FORMAT_KEY,
    FORMAT_VERSION,
    ID_HWM_KEY,
    NEXT_TREE_KEY,
    tree_prefix,
)
from tests.fuzz.settings import fuzz_io

tree_id = st.one_of(st.integers(0, 6).map(tree_prefix), st.binary(max_size=6))


@st.composite
def records(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    """A valid layout (default tree 1, tree "a" 2, next id 3) with one to three fields
    damaged, or every field random."""
    rec: dict = {  # type: ignore[type-arg]
        "format": FORMAT_VERSION,
        "catalog": {b"default": tree_prefix(1), b"a": tree_prefix(2)},
        "next": tree_prefix(3),
        "hwm": None,
        "dropping": [],
    }
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(("format", "catalog", "next", "hwm", "dropping")))
        if field == "format":
            rec["format"] = draw(st.one_of(st.none(), st.binary(max_size=3)))
        elif field == "catalog":
            name = draw(st.sampled_from((b"default", b"a", b"b", b"\xff")))
            rec["catalog"][name] = draw(tree_id)
        elif field == "next":
            rec["next"] = draw(st.one_of(st.none(), tree_id))
        elif field == "hwm":
            rec["hwm"] = draw(st.binary(max_size=9))
        else:
            rec["dropping"].append(draw(st.one_of(tree_id, st.binary(max_size=5))))
    return rec


def _write(path: Path, rec: dict) -> None:  # type: ignore[type-arg]
    db = plyvel.DB(str(path), create_if_missing=True)
    try:
        if rec["format"] is not None:
            db.put(FORMAT_KEY, rec["format"])
        for name, raw in rec["catalog"].items():
            db.put(CATALOG_PREFIX + name, raw)
        if rec["next"] is not None:
            db.put(NEXT_TREE_KEY, rec["next"])
        if rec["hwm"] is not None:
            db.put(ID_HWM_KEY, rec["hwm"])
        for d in rec["dropping"]:
            db.put(DROPPING_PREFIX + d, b"")
        db.put(tree_prefix(2) + b"k", b"v")  # a key of tree "a": must survive any open
    finally:
        db.close()


@fuzz_io
@given(records())
def test_open_with_damaged_catalog(rec: dict) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        _write(path, rec)
        try:
            store = Store.open(str(path))
        except CorruptionError:
            return
        try:
            trees = store._trees
            ids = [t.tree_id for t in trees.values()]
            assert len(ids) == len(set(ids)), f"two trees share an id: {trees}"
            assert 0 not in ids, f"a tree maps to the internal namespace: {trees}"
            assert all(i < store._next_tree_id for i in ids), (
                f"next tree id {store._next_tree_id} would reuse one of {trees}"
            )
            if "a" in trees and trees["a"].tree_id == 2:
                assert trees["a"].get(b"k") == b"v", "the open purged a live tree's data"
            t = store.tree("fresh")
            t.set(b"k", b"v")
            assert t.get(b"k") == b"v"
        finally:
            store.close()


def _open_refused(rec_changes: dict) -> None:  # type: ignore[type-arg]
    rec: dict = {"format": FORMAT_VERSION,  # type: ignore[type-arg]
                 "catalog": {b"default": tree_prefix(1), b"a": tree_prefix(2)},
                 "next": tree_prefix(3), "hwm": None, "dropping": []}
    rec.update(rec_changes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db"
        _write(path, rec)
        try:
            Store.open(str(path)).close()
        except CorruptionError:
            return
        raise AssertionError(f"opened a store with {rec_changes}")


def test_catalog_with_two_trees_on_one_id_is_refused() -> None:
    _open_refused({"catalog": {b"default": tree_prefix(1), b"a": tree_prefix(1)}})


def test_catalog_tree_on_the_internal_id_is_refused() -> None:
    _open_refused({"catalog": {b"default": tree_prefix(1), b"a": tree_prefix(0)}})


def test_catalog_next_tree_id_reusing_a_live_id_is_refused() -> None:
    _open_refused({"next": tree_prefix(2)})


def test_drop_marker_on_a_live_tree_is_refused_not_purged() -> None:
    _open_refused({"dropping": [tree_prefix(2)]})


def test_drop_marker_on_the_internal_namespace_is_refused_not_purged() -> None:
    _open_refused({"dropping": [tree_prefix(0)]})
