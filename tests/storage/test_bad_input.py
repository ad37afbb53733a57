"""Every public entry point rejects wrong types with a TypeError naming the argument."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nexus_raft.storage import Batch, Store

BAD_KEYS: list[Any] = [1, 1.5, None, bytearray(b"k"), memoryview(b"k"), ["k"], object()]
BAD_VALUES: list[Any] = ["text", 1, [b"v"], object()]


@pytest.fixture
def bad_calls(store: Store) -> list[tuple[str, Callable[[Any], object]]]:
    """(argument name, call taking the bad argument) for every public method."""
    t = store.tree("t")
    snap = store.snapshot()
    view = snap.tree("t")
    batch = Batch()
    sub = t.watch_prefix(b"")
    calls: list[tuple[str, Callable[[Any], object]]] = [
        ("key", lambda x: store.set(x, b"v")),
        ("key", lambda x: store.get(x)),
        ("key", lambda x: store.delete(x)),
        ("key", lambda x: store.contains(x)),
        ("key", lambda x: x in store),
        ("key", lambda x: t.set(x, b"v")),
        ("key", lambda x: t.get(x)),
        ("key", lambda x: t.delete(x)),
        ("key", lambda x: t.contains(x)),
        ("key", lambda x: x in t),
        ("key", lambda x: t.set_json(x, 1)),
        ("key", lambda x: t.get_json(x)),
        ("key", lambda x: t.compare_and_swap(x, None, b"v")),
        ("key", lambda x: t.fetch_and_update(x, lambda v: v)),
        ("key", lambda x: t.update_and_fetch(x, lambda v: v)),
        ("start", lambda x: t.range(x if x is not None else 1, None)),
        ("end", lambda x: t.range(None, x if x is not None else 1)),
        ("prefix", lambda x: t.scan_prefix(x)),
        ("prefix", lambda x: t.watch_prefix(x)),
        ("key", lambda x: batch.insert(x, b"v")),
        ("key", lambda x: batch.remove(x)),
        ("key", lambda x: view.get(x)),
        ("key", lambda x: x in view),
        ("start", lambda x: view.range(x if x is not None else 1, None)),
        ("prefix", lambda x: view.scan_prefix(x)),
    ]
    yield calls  # type: ignore[misc]
    sub.close()
    snap.close()


def test_bad_keys_raise_type_error_naming_the_argument(
    bad_calls: list[tuple[str, Callable[[Any], object]]],
) -> None:
    for arg, call in bad_calls:
        for bad in BAD_KEYS:
            with pytest.raises(TypeError, match=rf"^{arg} must be"):
                call(bad)


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_bad_values_raise_type_error_naming_the_argument(store: Store, bad: Any) -> None:
    t = store.tree("t")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("value", lambda: store.set(b"k", bad)),
        ("value", lambda: t.set(b"k", bad)),
        ("value", lambda: Batch().insert(b"k", bad)),
        ("expected", lambda: t.compare_and_swap(b"k", bad, b"v")),
        ("new", lambda: t.compare_and_swap(b"k", None, bad)),
        ("the value returned by fn", lambda: t.fetch_and_update(b"k", lambda old: bad)),
        ("the value returned by fn", lambda: t.update_and_fetch(b"k", lambda old: bad)),
    ]
    for arg, call in cases:
        with pytest.raises(TypeError, match=rf"^{arg} must be"):
            call()
    assert t.get(b"k") is None  # nothing was written by any failed call


def test_bad_fn_batch_json_and_flags(store: Store) -> None:
    t = store.tree("t")
    with pytest.raises(TypeError, match=r"^fn must be callable"):
        t.fetch_and_update(b"k", b"not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^batch must be a Batch"):
        store.apply_batch([(b"k", b"v")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^batch must be a Batch"):
        t.apply_batch(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^obj is not JSON serialisable"):
        t.set_json(b"k", object())
    for call in (
        lambda: t.iter(reverse=1),
        lambda: t.range(None, None, reverse="yes"),
        lambda: t.scan_prefix(b"", reverse=None),
    ):
        with pytest.raises(TypeError, match=r"^reverse must be bool"):
            call()
    with pytest.raises(TypeError, match=r"^tree must be a tree name"):
        Batch().insert(b"k", b"v", tree=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^tree must be a tree name"):
        Batch().remove(b"k", tree=b"t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^tree must not be empty"):
        Batch().insert(b"k", b"v", tree="")


@pytest.mark.parametrize("bad", [None, 1, b"t", ["t"]])
def test_bad_tree_names(store: Store, bad: Any) -> None:
    with pytest.raises(TypeError, match=r"^name must be str"):
        store.tree(bad)
    with pytest.raises(TypeError, match=r"^name must be str"):
        store.drop_tree(bad)
    with store.snapshot() as snap, pytest.raises(TypeError, match=r"^name must be str"):
        snap.tree(bad)


def test_empty_tree_name(store: Store) -> None:
    with pytest.raises(ValueError, match=r"^name must not be empty"):
        store.tree("")
    with pytest.raises(ValueError, match=r"^name must not be empty"):
        store.drop_tree("")


def test_bad_open_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^path must be str or os.PathLike"):
        Store.open(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^sync must be bool"):
        Store.open(tmp_path / "s", sync=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^create must be bool"):
        Store.open(tmp_path / "s", create="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^sync must be bool"):
        Store.open_temporary(sync=None)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()
