"""LogStore on real LevelDB files: persistence, truncation, compaction, cache, restart cost."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    SnapshotMeta,
)
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from nexus_raft.consensus.log import store as log_store_mod
from nexus_raft.consensus.log.codec import decode_entry
from nexus_raft.consensus.log.plan import payload_size
from nexus_raft.consensus.log.store import LOG_TREE, LogStore
from nexus_raft.errors import RaftUsageError
from nexus_raft.storage import Store

CS = ConfState(frozenset({1, 2, 3}))


def ents(lo: int, hi: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [Entry(i, term, data=i.to_bytes(size, "big")) for i in range(lo, hi + 1)]


def conf_entry(index: int, term: int, cc: ConfChange) -> Entry:
    return Entry(index, term, EntryType.CONF_CHANGE, cc.encode())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_fresh_log_bootstraps_and_persists(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        assert log.initial_state() == (HardState(), CS)
        assert (log.first_index(), log.last_index()) == (1, 0)
        assert log.entries(1, 1) == []
        log.save(HardState(3, 2, 5), ents(1, 5, term=3), None)
    with Store.open(path) as store:
        log = LogStore(store, conf_state=ConfState(frozenset({9})))  # ignored: not fresh
        assert log.initial_state() == (HardState(3, 2, 5), CS)
        assert log.last_index() == 5
        assert log.entries(1, 6) == ents(1, 5, term=3)
        assert [log.term(i) for i in range(0, 6)] == [0, 3, 3, 3, 3, 3]


def test_save_is_one_batch_and_one_fsync(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One synced write per save, also on an unsynced store (no marker write after it)."""
    calls = {"batch": 0, "flush": 0}
    real_apply, real_flush = Store.apply_batch, Store.flush

    def apply_batch(self: Store, batch: object, *, sync: bool | None = None) -> None:
        assert sync is True  # the batch itself is synced
        calls["batch"] += 1
        real_apply(self, batch, sync=sync)  # type: ignore[arg-type]

    def flush(self: Store) -> None:
        calls["flush"] += 1
        real_flush(self)

    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        monkeypatch.setattr(Store, "apply_batch", apply_batch)
        monkeypatch.setattr(Store, "flush", flush)
        log.save(HardState(1, 1, 0), ents(1, 500), None)
        assert calls == {"batch": 1, "flush": 0}
        log.save(None, (), None)  # nothing to persist: no write at all
        assert calls == {"batch": 1, "flush": 0}


def test_conflicting_append_truncates_suffix(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 10, term=1), None)
        log.save(None, ents(5, 7, term=2), None)
        assert log.last_index() == 7
        assert [log.term(i) for i in range(1, 8)] == [1, 1, 1, 1, 2, 2, 2]
        with pytest.raises(LogUnavailable):
            log.term(8)
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.last_index() == 7
        assert log.entries(1, 8) == ents(1, 4, term=1) + ents(5, 7, term=2)
        assert store.tree(LOG_TREE).count() == 7  # the stale suffix is gone from disk


def test_gap_and_bad_input_are_rejected(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 3), None)
        with pytest.raises(RaftUsageError):
            log.save(None, ents(5, 6), None)
        with pytest.raises(RaftUsageError):
            log.save(None, [Entry(4, 1), Entry(6, 1)], None)
        with pytest.raises(TypeError, match="hard_state"):
            log.save("x", (), None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="entries"):
            log.save(None, [b"x"], None)  # type: ignore[list-item]
        with pytest.raises(TypeError, match="lo"):
            log.entries("1", 2)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="store"):
            LogStore("nope")  # type: ignore[arg-type]
        with pytest.raises(LogUnavailable):
            log.entries(1, 5)
        assert log.last_index() == 3


def test_entries_max_bytes_returns_at_least_one(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS, cache_entries=4)
        log.save(None, ents(1, 20, size=100), None)
        # 1..16 come from disk, 17..20 from the cache: same rule across the seam.
        assert len(log.entries(1, 21, max_bytes=1)) == 1
        assert len(log.entries(1, 21, max_bytes=3 * 124)) == 3
        assert len(log.entries(15, 21, max_bytes=4 * 124)) == 4
        assert log.entries(1, 21) == ents(1, 20, size=100)


def test_compaction_deletes_range_and_survives_reopen(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS, cache_entries=16)
        log.save(HardState(2, 1, 100), ents(1, 100, term=2), None)
        meta = log.compact(60)
        assert meta == SnapshotMeta(60, 2, CS)
        assert log.first_index() == 61
        with pytest.raises(LogCompacted):
            log.entries(60, 62)
        with pytest.raises(LogCompacted):
            log.term(59)
        assert log.term(60) == 2
        assert log.compact(30) == meta  # older: no change
        with pytest.raises(RaftUsageError):
            log.compact(101)
        assert store.tree(LOG_TREE).count() == 40
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.snapshot() == SnapshotMeta(60, 2, CS)
        assert (log.first_index(), log.last_index()) == (61, 100)
        assert log.entries(61, 101) == ents(61, 100, term=2)


def test_interrupted_compaction_is_finished_on_open(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 50), None)
        # "Crash" after the synced metadata batch, before the range delete.
        monkeypatch.setattr(LogStore, "_purge", lambda self, lo, hi: None)
        log.create_snapshot(40)
        assert store.tree(LOG_TREE).count() == 50
    monkeypatch.undo()
    with Store.open(path) as store:
        log = LogStore(store)
        assert store.tree(LOG_TREE).count() == 10
        assert log.entries(41, 51) == ents(41, 50)


def test_compaction_interrupted_between_chunks_is_finished_on_open(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_store_mod, "_CHUNK", 10)
    purge = LogStore._purge
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 50), None)
        log.create_snapshot(5)
        # "Crash" after the first chunk of the next range delete: 16..40 survive.
        monkeypatch.setattr(LogStore, "_purge", lambda self, lo, hi: purge(self, lo, lo + 9))
        log.create_snapshot(40)
        assert store.tree(LOG_TREE).count() == 35
    monkeypatch.setattr(LogStore, "_purge", purge)
    with Store.open(path) as store:
        log = LogStore(store)
        assert store.tree(LOG_TREE).count() == 10
        assert (log.first_index(), log.last_index()) == (41, 50)


def test_open_after_compaction_does_not_seek_to_the_log_head(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seeking to the first key walks every deletion marker of the compacted
    # range that LevelDB still holds: a clean compaction needs no such seek.
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 50), None)
        log.create_snapshot(40)
    with Store.open(path) as store:
        tree_type = type(store.tree(LOG_TREE))

        def no_first(self: object) -> None:
            raise AssertionError("open() sought the first log key")

        monkeypatch.setattr(tree_type, "first", no_first)
        log = LogStore(store)
        assert (log.first_index(), log.last_index()) == (41, 50)


def test_install_snapshot_keeps_matching_tail_or_discards(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, ents(1, 20, term=1), None)
        cs2 = ConfState(frozenset({1, 2}))
        log.save(None, (), SnapshotMeta(10, 1, cs2))  # agrees: 11..20 kept
        assert (log.first_index(), log.last_index()) == (11, 20)
        assert log.initial_state()[1] == cs2
        log.save(HardState(5, 0, 30), ents(31, 32, term=5), SnapshotMeta(30, 4, CS))  # beyond
        assert (log.first_index(), log.last_index()) == (31, 32)
        assert store.tree(LOG_TREE).count() == 2
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.snapshot() == SnapshotMeta(30, 4, CS)
        assert log.entries(31, 33) == ents(31, 32, term=5)
        assert log.hard_state == HardState(5, 0, 30)


def test_cache_is_bounded_and_reads_below_it_hit_disk(path: Path) -> None:
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS, cache_entries=100)
        for lo in range(1, 10_001, 1000):
            log.save(None, ents(lo, lo + 999), None)
            assert log.cached_entries <= 100
        assert log.cached_entries == 100
        assert log.entries(1, 10_001) == ents(1, 10_000)
        log.save(None, ents(9_950, 9_960, term=2), None)  # truncate inside the cache
        assert log.cached_entries <= 100
        assert log.entries(9_940, 9_961) == ents(9_940, 9_949) + ents(9_950, 9_960, term=2)
        log.save(None, ents(5_000, 5_001, term=3), None)  # truncate below the cache
        assert log.entries(4_999, 5_002) == ents(4_999, 4_999) + ents(5_000, 5_001, term=3)


def test_cache_of_big_entries_is_bounded_by_bytes_and_restart_decodes_only_that(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = [Entry(i, 1, data=bytes([i % 251]) * 100_000) for i in range(1, 201)]  # 20 MB
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS, cache_entries=4096, cache_bytes=1_000_000)
        for lo in range(0, 200, 7):
            log.save(None, big[lo : lo + 7], None)
            assert log.cached_entries <= 10  # 10 x 100 kB, not 4096 entries
        assert log.cached_entries == 10
        assert log.entries(1, 201) == big  # below the cache: from disk
        log.save(None, [Entry(201, 1, data=b"x" * 3_000_000)], None)
        assert log.cached_entries == 1  # one entry over the bound is still cached
        assert log.entries(200, 202)[1].data == b"x" * 3_000_000
    decoded = 0

    def counting(index: int, raw: bytes) -> Entry:
        nonlocal decoded
        decoded += 1
        return decode_entry(index, raw)

    monkeypatch.setattr(log_store_mod, "decode_entry", counting)
    with Store.open(path) as store:
        log = LogStore(store, cache_entries=4096, cache_bytes=1_000_000)
        assert decoded == 1 and log.cached_entries == 1  # the 3 MB tail entry only
        assert log.entries(1, 202) == [*big, Entry(201, 1, data=b"x" * 3_000_000)]
    with Store.open(path) as store:
        log = LogStore(store, cache_entries=4096, cache_bytes=5_000_000)
        assert log.cached_entries == 20  # 3 MB + 19 x 100 kB (raw sizes include headers)


def _check_cache(log: LogStore) -> None:
    """The tail cache is contiguous, its byte count exact, and within both bounds."""
    cache = log._cache
    assert sorted(cache) == list(range(log._cache_lo, log._cache_lo + len(cache)))
    assert log._cache_bytes == sum(payload_size(e) for e in cache.values())
    assert len(cache) <= log._cache_max
    assert len(cache) <= 1 or log._cache_bytes <= log._cache_bytes_max


def test_conf_state_rebuilt_from_log_without_scan(path: Path) -> None:
    add4 = ConfChange(ConfChangeType.ADD_LEARNER, 4, b"127.0.0.1:7004")
    promote4 = ConfChange(ConfChangeType.ADD_VOTER, 4)
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, [*ents(1, 5), conf_entry(6, 1, add4), *ents(7, 9)], None)
        log.save(None, [conf_entry(10, 1, promote4)], None)
        log.save(None, ents(10, 11, term=2), None)  # the promotion is overwritten
    with Store.open(path) as store:
        log = LogStore(store)
        _, cs = log.initial_state()
        assert cs == ConfState(frozenset({1, 2, 3}), frozenset({4}))
        snap = log.create_snapshot(8)
        assert snap.conf_state == cs
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.initial_state()[1] == ConfState(frozenset({1, 2, 3}), frozenset({4}))
        assert log.conf_state_at(8) == log.conf_state_at(11) == cs
        with pytest.raises(LogCompacted):
            log.conf_state_at(7)
        with pytest.raises(LogUnavailable):
            log.conf_state_at(12)


def test_conf_state_at_an_index_before_later_changes(path: Path) -> None:
    add4 = ConfChange(ConfChangeType.ADD_LEARNER, 4, b"127.0.0.1:7004")
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(None, [*ents(1, 5), conf_entry(6, 1, add4), *ents(7, 9)], None)
        assert log.conf_state_at(0) == log.conf_state_at(5) == CS
        assert log.conf_state_at(6) == ConfState(frozenset({1, 2, 3}), frozenset({4}))


def test_drop_payloads_is_incremental_and_keeps_conf_entries(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cc = conf_entry(5, 1, ConfChange(ConfChangeType.ADD_LEARNER, 7))
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS, cache_entries=3)
        log.save(None, [*ents(1, 4), cc, *ents(6, 10)], None)
        log.drop_payloads(6)
        assert log.payload_floor == 6
        got = log.entries(1, 11)
        assert [e.data is None for e in got] == [True] * 4 + [False, True] + [False] * 4
        decoded: list[int] = []

        def counting(index: int, raw: bytes) -> Entry:
            decoded.append(index)
            return decode_entry(index, raw)

        monkeypatch.setattr(log_store_mod, "decode_entry", counting)
        log.drop_payloads(8)  # reads only 7..8 (8 is cached: no decode at all)
        assert decoded == [7]
        monkeypatch.undo()
        log.save(None, ents(8, 9, term=2), None)  # rewritten entries carry payloads again
        assert log.payload_floor == 7
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.payload_floor == 7
        assert [e.data is None for e in log.entries(1, 10)] == (
            [True] * 4 + [False] + [True] * 2 + [False] * 2
        )


def test_floor_over_metadata_only_entries_rides_on_a_later_save(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthy witness: nothing to rewrite, so moving the floor costs no write of its own."""
    batches = 0
    real_apply = Store.apply_batch

    def apply_batch(self: Store, batch: object, *, sync: bool | None = None) -> None:
        nonlocal batches
        batches += 1
        real_apply(self, batch, sync=sync)  # type: ignore[arg-type]

    monkeypatch.setattr(log_store_mod, "_FLOOR_LAG", 3)
    meta = [e.metadata_only() for e in ents(1, 12)]
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        log.save(HardState(1, 1, 5), meta[:5], None)
        monkeypatch.setattr(Store, "apply_batch", apply_batch)
        log.drop_payloads(2)
        assert (batches, log.payload_floor) == (0, 2)  # in memory only
        log.save(HardState(1, 1, 8), meta[5:8], None)  # floor leads by 2 < 3: not written
        log.drop_payloads(8)
        log.save(HardState(1, 1, 9), meta[8:9], None)  # leads by 8: rides along
        assert (batches, log.payload_floor) == (2, 8)
        log.drop_payloads(9)
        monkeypatch.setattr(Store, "apply_batch", real_apply)
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.payload_floor == 8  # 9 was not written: it trails (safe)
        cc = conf_entry(10, 1, ConfChange(ConfChangeType.ADD_LEARNER, 7))
        log.save(None, [cc, meta[10]], None)
        log.drop_payloads(10)  # a configuration entry keeps its payload: nothing rewritten
        assert log.entries(10, 11) == [cc]
        log.save(None, [Entry(10, 2, data=b"q")], None)  # truncation lowers the floor: written
        assert log.payload_floor == 9
    with Store.open(path) as store:
        log = LogStore(store)
        assert log.payload_floor == 9
        assert log.entries(9, 11) == [meta[8], Entry(10, 2, data=b"q")]


def test_restart_reads_only_metadata_and_tail(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 200_000
    with Store.open(path) as store:
        log = LogStore(store, conf_state=CS)
        payload = b"x" * 64
        for lo in range(1, n + 1, 10_000):
            log.save(
                HardState(1, 1, lo), [Entry(i, 1, data=payload) for i in range(lo, lo + 10_000)]
            )
    decoded = 0

    def counting(index: int, raw: bytes) -> Entry:
        nonlocal decoded
        decoded += 1
        return decode_entry(index, raw)

    monkeypatch.setattr(log_store_mod, "decode_entry", counting)
    with Store.open(path) as store:
        started = time.perf_counter()
        log = LogStore(store, cache_entries=256)
        elapsed = time.perf_counter() - started
        assert (log.first_index(), log.last_index()) == (1, n)
        assert decoded <= 256  # the cache warm-up only, never the whole log
        assert elapsed < 1.0, f"open took {elapsed:.3f}s"
        assert log.term(n) == 1 and log.entries(n - 1, n + 1)[1].data == payload


# --- same answers as the core's MemoryStorage -----------------------------------------------


def _compare(log: LogStore, mem: MemoryStorage) -> None:
    assert log.initial_state() == mem.initial_state()
    assert log.snapshot() == mem.snapshot()
    assert (log.first_index(), log.last_index()) == (mem.first_index(), mem.last_index())
    assert log.payload_floor == mem.payload_floor
    first, last = mem.first_index(), mem.last_index()
    for i in range(max(0, first - 2), last + 3):
        expected: object
        try:
            expected = mem.term(i)
        except (LogCompacted, LogUnavailable) as exc:
            expected = type(exc)
        try:
            got: object = log.term(i)
        except (LogCompacted, LogUnavailable) as exc:
            got = type(exc)
        assert got == expected, i
    for lo, hi, mb in (
        (first, last + 1, None),
        (first, last + 1, 40),
        (first - 1, last, None),
        (first, last + 2, None),
    ):
        try:
            expected = mem.entries(lo, hi, mb)
        except (LogCompacted, LogUnavailable) as exc:
            expected = type(exc)
        try:
            got = log.entries(lo, hi, mb)
        except (LogCompacted, LogUnavailable) as exc:
            got = type(exc)
        assert got == expected, (lo, hi, mb)


@pytest.mark.parametrize("seed", range(4))
def test_differential_against_memory_storage(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / f"s{seed}"
    mem = MemoryStorage(CS)
    store = Store.open(path)
    log = LogStore(
        store,
        conf_state=CS,
        cache_entries=rng.choice([2, 7, 64]),
        cache_bytes=rng.choice([0, 30, 1 << 20]),
    )
    term = 1
    try:
        for _step in range(300):
            op = rng.random()
            last = mem.last_index()
            if op < 0.5:
                first = rng.randint(max(mem.first_index() - 2, 1), last + 1)
                if rng.random() < 0.3:
                    term += 1
                batch: list[Entry] = []
                for i in range(first, first + rng.randint(1, 6)):
                    if rng.random() < 0.05:
                        cc = ConfChange(ConfChangeType.ADD_LEARNER, rng.randint(4, 9))
                        batch.append(conf_entry(i, term, cc))
                    else:
                        batch.append(Entry(i, term, data=rng.randbytes(rng.randint(0, 20))))
                hs = HardState(term, 1, 0) if rng.random() < 0.5 else None
                mem.append(batch)
                if hs is not None:
                    mem.set_hard_state(hs)
                log.save(hs, batch)
            elif op < 0.6 and last > mem.snapshot().index:
                index = rng.randint(mem.snapshot().index + 1, last)
                assert log.create_snapshot(index) == mem.create_snapshot(index)
            elif op < 0.7:
                index = rng.randint(mem.snapshot().index, last + 3)
                known = mem.first_index() - 1 <= index <= last
                t = mem.term(index) if known and rng.random() < 0.5 else term + 1
                meta = SnapshotMeta(index, t, CS)
                mem.apply_snapshot(meta)
                log.apply_snapshot(meta)
                term = max(term, t)
            elif op < 0.8:
                upto = rng.randint(0, last + 2)
                mem.drop_payloads(upto)
                log.drop_payloads(upto)
            elif op < 0.85:
                store.close()
                store = Store.open(path)
                log = LogStore(
                    store,
                    cache_entries=rng.choice([2, 7, 64]),
                    cache_bytes=rng.choice([0, 30, 1 << 20]),
                )
            _compare(log, mem)
            _check_cache(log)
    finally:
        store.close()
