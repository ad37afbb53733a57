"""Tree reads: point lookups, JSON, ordered iteration, ranges, prefixes, first/last."""

from __future__ import annotations

import pytest

from nexus_raft.storage import Store, Tree

KEYS = [b"a", b"a\x00", b"ab", b"abc", b"b", b"b\xff", b"b\xff\xff", b"c"]


@pytest.fixture
def tree(store: Store) -> Tree:
    t = store.tree("t")
    for k in KEYS:
        t.set(k, k.upper())
    return t


def test_get_set_delete_contains(store: Store) -> None:
    t = store.tree("x")
    assert t.get(b"k") is None and not t.contains(b"k") and b"k" not in t
    t.set("k", b"1")
    assert t.get(b"k") == b"1" and t.contains("k") and "k" in t
    t.set(b"k", b"2")  # overwrite
    assert t.get("k") == b"2"
    t.delete(b"k")
    assert t.get(b"k") is None


def test_json_round_trip(store: Store) -> None:
    t = store.tree("j")
    t.set_json("doc", {"n": 1, "tags": ["a", "b"], "x": None})
    assert t.get_json("doc") == {"n": 1, "tags": ["a", "b"], "x": None}
    assert t.get(b"doc") == b'{"n":1,"tags":["a","b"],"x":null}'
    assert t.get_json("absent") is None


def test_iter_in_key_order_both_ways(tree: Tree) -> None:
    assert [k for k, _ in tree.iter()] == KEYS
    assert [k for k, _ in tree.iter(reverse=True)] == KEYS[::-1]
    assert list(tree) == [(k, k.upper()) for k in KEYS]
    assert list(tree.keys()) == KEYS
    assert list(tree.keys(reverse=True)) == KEYS[::-1]


def test_range_is_half_open(tree: Tree) -> None:
    assert [k for k, _ in tree.range(b"ab", b"b")] == [b"ab", b"abc"]
    assert [k for k, _ in tree.range(b"ab", b"b", reverse=True)] == [b"abc", b"ab"]
    assert [k for k, _ in tree.range("b", None)] == [b"b", b"b\xff", b"b\xff\xff", b"c"]
    assert [k for k, _ in tree.range(None, "ab")] == [b"a", b"a\x00"]
    assert [k for k, _ in tree.range(None, None)] == KEYS
    assert [k for k, _ in tree.range(None, None, reverse=True)] == KEYS[::-1]
    assert list(tree.range(b"c", b"a")) == []  # start after end: empty
    assert list(tree.range(b"abc", b"abc")) == []


def test_scan_prefix_including_ff_bytes(tree: Tree) -> None:
    assert [k for k, _ in tree.scan_prefix(b"a")] == [b"a", b"a\x00", b"ab", b"abc"]
    assert [k for k, _ in tree.scan_prefix("ab", reverse=True)] == [b"abc", b"ab"]
    assert [k for k, _ in tree.scan_prefix(b"b\xff")] == [b"b\xff", b"b\xff\xff"]
    assert [k for k, _ in tree.scan_prefix(b"b\xff\xff")] == [b"b\xff\xff"]
    assert [k for k, _ in tree.scan_prefix(b"b\xff", reverse=True)] == [b"b\xff\xff", b"b\xff"]
    assert list(tree.scan_prefix(b"\xff")) == []
    assert [k for k, _ in tree.scan_prefix(b"")] == KEYS
    assert [k for k, _ in tree.scan_prefix(b"", reverse=True)] == KEYS[::-1]


def test_first_last_count(tree: Tree, store: Store) -> None:
    assert tree.first() == (b"a", b"A")
    assert tree.last() == (b"c", b"C")
    assert tree.count() == len(KEYS)
    empty = store.tree("empty")
    assert empty.first() is None and empty.last() is None and empty.count() == 0


def test_keys_come_back_as_bytes_without_prefix(tree: Tree) -> None:
    for key, value in tree.iter():
        assert type(key) is bytes and type(value) is bytes
        assert value == key.upper()


def test_tree_handle_is_cached_and_named(store: Store) -> None:
    t = store.tree("users")
    assert store.tree("users") is t
    assert t.name == "users" and "users" in repr(t)
    assert t.tree_id >= 2
