"""compare_and_swap, fetch_and_update, update_and_fetch: semantics and races."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from nexus_raft.storage import Store, Tree

THREADS = 8
PER_THREAD = 300


def race(worker: Callable[[int], None]) -> None:
    """Run ``worker(i)`` on 8 threads released together; re-raise the first error."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            worker(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_cas_expected_none_means_absent(store: Store) -> None:
    t = store.tree("t")
    assert t.compare_and_swap(b"k", None, b"1") is True
    assert t.compare_and_swap(b"k", None, b"2") is False
    assert t.get(b"k") == b"1"


def test_cas_swaps_only_on_match(store: Store) -> None:
    t = store.tree("t")
    t.set(b"k", b"1")
    assert t.compare_and_swap(b"k", b"0", b"2") is False
    assert t.get(b"k") == b"1"
    assert t.compare_and_swap("k", bytearray(b"1"), memoryview(b"2")) is True
    assert t.get(b"k") == b"2"


def test_cas_new_none_deletes(store: Store) -> None:
    t = store.tree("t")
    t.set(b"k", b"1")
    assert t.compare_and_swap(b"k", b"1", None) is True
    assert t.get(b"k") is None
    assert t.compare_and_swap(b"k", None, None) is True  # absent stays absent
    assert t.compare_and_swap(b"k", b"1", None) is False


def test_fetch_and_update_returns_old(store: Store) -> None:
    t = store.tree("t")
    seen: list[bytes | None] = []

    def bump(old: bytes | None) -> bytes:
        seen.append(old)
        return b"1" if old is None else str(int(old) + 1).encode()

    assert t.fetch_and_update(b"n", bump) is None
    assert t.fetch_and_update(b"n", bump) == b"1"
    assert t.get(b"n") == b"2"
    assert seen == [None, b"1"]  # fn ran exactly once per call


def test_update_and_fetch_returns_new(store: Store) -> None:
    t = store.tree("t")
    assert t.update_and_fetch(b"n", lambda old: b"x") == b"x"
    assert t.update_and_fetch(b"n", lambda old: bytearray(old or b"") + b"y") == b"xy"
    assert t.update_and_fetch(b"n", lambda old: None) is None
    assert t.get(b"n") is None


def test_fn_raising_writes_nothing(store: Store) -> None:
    t = store.tree("t")
    t.set(b"k", b"v")

    def boom(old: bytes | None) -> bytes:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        t.fetch_and_update(b"k", boom)
    assert t.get(b"k") == b"v"


def test_fn_may_use_the_store(store: Store) -> None:
    # fn runs under the store's re-entrant write lock: reading or writing
    # from inside it must not deadlock.
    t = store.tree("t")

    def fn(old: bytes | None) -> bytes:
        store.set(b"side", b"effect")
        return (old or b"") + (store.get(b"side") or b"")

    assert t.update_and_fetch(b"k", fn) == b"effect"


def increment(old: bytes | None) -> bytes:
    return b"1" if old is None else str(int(old) + 1).encode()


def test_fetch_and_update_races_exact_count(store: Store) -> None:
    t = store.tree("counters")
    olds: list[bytes | None] = []

    def worker(_: int) -> None:
        for _ in range(PER_THREAD):
            olds.append(t.fetch_and_update(b"n", increment))

    race(worker)
    total = THREADS * PER_THREAD
    assert t.get(b"n") == str(total).encode()
    # Every increment saw a distinct old value: no lost updates.
    assert sorted(int(o) if o else 0 for o in olds) == list(range(total))


def test_update_and_fetch_races_exact_count(store: Store) -> None:
    t = store.tree("counters")
    news: list[int] = []

    def worker(_: int) -> None:
        for _ in range(PER_THREAD):
            news.append(int(t.update_and_fetch(b"n", increment) or b"0"))

    race(worker)
    assert sorted(news) == list(range(1, THREADS * PER_THREAD + 1))


def cas_increment(t: Tree, key: bytes) -> int:
    """Increment with a CAS retry loop; return how many CAS attempts failed."""
    failures = 0
    while True:
        old = t.get(key)
        if t.compare_and_swap(key, old, increment(old)):
            return failures
        failures += 1


def test_cas_races_exact_count(store: Store) -> None:
    t = store.tree("counters")
    wins = [0] * THREADS

    def worker(i: int) -> None:
        for _ in range(PER_THREAD):
            cas_increment(t, b"n")
            wins[i] += 1

    race(worker)
    assert sum(wins) == THREADS * PER_THREAD
    assert t.get(b"n") == str(THREADS * PER_THREAD).encode()


def test_cas_claim_races_exactly_one_winner_per_key(store: Store) -> None:
    t = store.tree("claims")
    winners: list[tuple[int, int]] = []

    def worker(i: int) -> None:
        for key in range(200):
            if t.compare_and_swap(b"%03d" % key, None, str(i).encode()):
                winners.append((key, i))

    race(worker)
    assert sorted(k for k, _ in winners) == list(range(200))
    for key, owner in winners:
        assert t.get(b"%03d" % key) == str(owner).encode()


def test_cas_and_plain_sets_race_without_lost_writes(store: Store) -> None:
    # Half the threads set their own keys while the others CAS-increment a
    # shared counter: both kinds of write must all land.
    t = store.tree("mixed")

    def worker(i: int) -> None:
        for n in range(PER_THREAD):
            if i % 2:
                cas_increment(t, b"counter")
            else:
                t.set(b"t%d-%04d" % (i, n), b"x")

    race(worker)
    assert t.get(b"counter") == str(THREADS // 2 * PER_THREAD).encode()
    assert sum(1 for _ in t.scan_prefix(b"t")) == THREADS // 2 * PER_THREAD
