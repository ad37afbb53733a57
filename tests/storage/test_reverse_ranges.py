"""Reverse scans agree with a sorted-list reference on every bound.

plyvel 1.5.1 drops single-key reverse ranges that have a lower bound; these
cases pin the storage layer's workaround.
"""

from __future__ import annotations

import itertools
import random

from nexus_raft.storage import Store

KEYS = [b"a1", b"a2", b"a3", b"a5", b"b", b"b\xff", b"b\xff\xff", b"c"]
BOUNDS = [None, b"", b"a", b"a1", b"a2", b"a3", b"a4", b"a5", b"a6", b"b", b"b\xff", b"c", b"d"]


def _reference(start: bytes | None, end: bytes | None) -> list[bytes]:
    return [k for k in KEYS if (start is None or k >= start) and (end is None or k < end)]


def test_reverse_range_matches_reference_for_every_bound_pair() -> None:
    with Store.open_temporary() as store:
        tree = store.tree("t")
        store.tree("before").set(b"zz", b"x")
        store.tree("u").set(b"a", b"x")
        for k in KEYS:
            tree.set(k, k)
        snap = store.snapshot()
        for start, end in itertools.product(BOUNDS, BOUNDS):
            want = _reference(start, end)
            assert [k for k, _ in tree.range(start, end)] == want
            assert [k for k, _ in tree.range(start, end, reverse=True)] == want[::-1], (start, end)
            got = [k for k, _ in snap.tree("t").range(start, end, reverse=True)]
            assert got == want[::-1], (start, end)
        snap.close()


def test_reverse_prefix_scan_matches_reference() -> None:
    with Store.open_temporary() as store:
        tree = store.tree("t")
        for k in KEYS:
            tree.set(k, k)
        snap = store.snapshot()
        for prefix in [b"", b"a", b"a2", b"a5", b"b", b"b\xff", b"b\xff\xff", b"c", b"x"]:
            want = [k for k in KEYS if k.startswith(prefix)][::-1]
            assert [k for k, _ in tree.scan_prefix(prefix, reverse=True)] == want, prefix
            assert [k for k, _ in snap.tree("t").scan_prefix(prefix, reverse=True)] == want
        snap.close()


def test_reverse_range_random_against_reference() -> None:
    rng = random.Random(7)
    with Store.open_temporary() as store:
        tree = store.tree("r")
        alphabet = b"ab\xff"
        keys = sorted(
            {bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 3))) for _ in range(40)}
        )
        for k in keys:
            tree.set(k, b"v")
        for _ in range(300):
            lo, hi = sorted(rng.sample([*keys, b"\x00", b"\xff\xff\xff\xff"], 2))
            want = [k for k in keys if lo <= k < hi][::-1]
            assert [k for k, _ in tree.range(lo, hi, reverse=True)] == want
