"""The simulated disk backend: the real Store runs on it, and it loses what a crash loses.

A differential test drives the same random operations through a LevelDB store
and a simulated one and requires identical answers (so the simulator's disk
is faithful to what the store code needs); the rest pins the durability
model: synced versus unsynced writes, process crash versus power loss, the
log-rotation gap, armed crashes and dead handles.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nexus_raft.errors import StorageError, StoreLockedError
from nexus_raft.storage import Batch, Store
from nexus_raft.storage.backend import LEVELDB, StorageBackend
from nexus_raft.storage.simulated import SimulatedCrash, SimulatedDisk


def test_both_backends_are_storage_backends() -> None:
    assert isinstance(LEVELDB, StorageBackend)
    assert isinstance(SimulatedDisk(), StorageBackend)


def test_store_open_refuses_a_non_backend() -> None:
    with pytest.raises(TypeError, match="backend"):
        Store.open("x", backend=object())  # type: ignore[arg-type]


def _random_ops(store: Store, rng: random.Random) -> list[object]:
    """Mixed writes and reads over two trees; returns every answer in order."""
    out: list[object] = []
    trees = [store.tree("a"), store.tree("b"), store.tree("a-b")]
    keys = [bytes([c]) * n for c in b"abxy\xff" for n in (1, 2, 3)]
    for _ in range(400):
        t = rng.choice(trees)
        k = rng.choice(keys)
        r = rng.random()
        if r < 0.3:
            t.set(k, rng.randbytes(rng.randint(0, 8)))
        elif r < 0.4:
            t.delete(k)
        elif r < 0.5:
            b = Batch()
            for _ in range(rng.randint(1, 5)):
                kk = rng.choice(keys)
                if rng.random() < 0.7:
                    b.insert(kk, rng.randbytes(3), tree=rng.choice(["a", "b"]))
                else:
                    b.remove(kk)
            t.apply_batch(b)
        elif r < 0.6:
            out.append(t.compare_and_swap(k, t.get(k), b"cas"))
        elif r < 0.7:
            start, end = sorted(rng.sample(keys, 2))
            out.append(list(t.range(start, end, reverse=rng.random() < 0.5)))
        elif r < 0.8:
            out.append(list(t.scan_prefix(k[:1], reverse=rng.random() < 0.5)))
        elif r < 0.85:
            out.append((t.first(), t.last(), t.count()))
        elif r < 0.9:
            with store.snapshot() as snap:
                t.set(k, b"after")
                out.append(list(snap.tree(t.name).iter()))
                out.append(snap.tree(t.name).get(k))
        elif r < 0.93:
            out.append(store.drop_tree("b"))
            trees[1] = store.tree("b")
        else:
            out.append(t.get(k))
    out.append(store.tree_names())
    return out


@pytest.mark.parametrize("seed", range(5))
def test_simulated_store_answers_like_leveldb(tmp_path: Path, seed: int) -> None:
    with Store.open(tmp_path / "real") as real:
        want = _random_ops(real, random.Random(seed))
    disk = SimulatedDisk()
    with Store.open("sim", backend=disk) as sim:
        got = _random_ops(sim, random.Random(seed))
    assert got == want


def test_reopen_after_close_keeps_everything() -> None:
    disk = SimulatedDisk()
    with Store.open("s", backend=disk) as s:
        s.tree("t").set(b"k", b"v")
    with Store.open("s", backend=disk, create=False) as s:
        assert s.tree("t").get(b"k") == b"v"


def test_missing_store_and_double_open_are_refused() -> None:
    disk = SimulatedDisk()
    with pytest.raises(StorageError, match="no store"):
        Store.open("nowhere", backend=disk, create=False)
    s = Store.open("s", backend=disk)
    with pytest.raises(StoreLockedError):
        Store.open("s", backend=disk)
    s.close()


def test_power_loss_drops_unsynced_writes_and_keeps_synced_ones() -> None:
    disk = SimulatedDisk()
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    t.set(b"a", b"1")
    s.flush()  # synced marker: a is durable
    t.set(b"b", b"2")  # unsynced
    assert disk.unsynced() == 1
    report = disk.crash(power_loss=True)
    assert report.lost == 1
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert s.tree("t").get(b"a") == b"1" and s.tree("t").get(b"b") is None


def test_process_crash_keeps_unsynced_writes() -> None:
    disk = SimulatedDisk()
    s = Store.open("s", backend=disk)
    s.tree("t").set(b"b", b"2")
    assert disk.crash(power_loss=False).lost == 0
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert s.tree("t").get(b"b") == b"2"
    # Reopening recovered the log into a synced table: a power loss now keeps it.
    disk.crash(power_loss=True)
    disk.reboot()
    assert Store.open("s", backend=disk).tree("t").get(b"b") == b"2"


def _synced_marker(s: Store) -> None:
    marker = Batch()
    marker.insert(b"marker", b"")
    s.apply_batch(marker, sync=True)


def test_sync_after_a_log_rotation_leaves_the_old_generation_unsynced() -> None:
    """LevelDB's gap: a synced write in a new log does not sync the rotated one."""
    disk = SimulatedDisk(flush_after=(1000, 1000))
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    s.flush()
    disk.write_buffer_bytes = 64
    t.set(b"big", b"x" * 100)  # unsynced, fills the memtable
    _synced_marker(s)  # rotates first: the marker goes to the new log, synced
    assert disk.rotations >= 1 and disk.unsynced() == 1
    disk.crash(power_loss=True)
    disk.reboot()
    assert Store.open("s", backend=disk).tree("t").get(b"big") is None


def test_flush_makes_the_rotated_generation_durable_too() -> None:
    """Store.flush() writes the memtable to a table (a range compaction): nothing stays unsynced."""
    disk = SimulatedDisk(flush_after=(1000, 1000))
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    disk.write_buffer_bytes = 64
    t.set(b"big", b"x" * 100)
    _synced_marker(s)
    assert disk.unsynced() == 1
    s.flush()
    assert disk.unsynced() == 0
    disk.crash(power_loss=True)
    disk.reboot()
    assert Store.open("s", backend=disk).tree("t").get(b"big") == b"x" * 100


def test_a_rotated_generation_is_durable_once_flushed() -> None:
    disk = SimulatedDisk(flush_after=(2, 2))
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    disk.write_buffer_bytes = 64
    t.set(b"big", b"x" * 100)
    s.flush()
    t.set(b"c", b"1")
    s.flush()  # the old memtable has been flushed by now
    assert disk.unsynced() == 0
    disk.crash(power_loss=True)
    disk.reboot()
    assert Store.open("s", backend=disk).tree("t").get(b"big") == b"x" * 100


def test_armed_crash_fires_before_the_chosen_write_and_kills_handles() -> None:
    disk = SimulatedDisk()
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    reports = []
    disk.on_crash = reports.append
    disk.arm(after=1, label="second write")
    t.set(b"a", b"1")
    with pytest.raises(SimulatedCrash):
        t.set(b"b", b"2")
    assert reports and reports[0].label == "second write"
    with pytest.raises(SimulatedCrash):
        t.get(b"a")  # the process is dead: even reads fail
    with pytest.raises(SimulatedCrash):
        Store.open("s", backend=disk)
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert s.tree("t").get(b"a") == b"1" and s.tree("t").get(b"b") is None


def test_armed_crash_with_a_predicate_names_the_situation() -> None:
    disk = SimulatedDisk()
    s = Store.open("s", backend=disk)
    s.tree("t").set(b"a", b"1")
    s.tree("u").set(b"a", b"1")
    disk.arm(when=lambda: "inside drop_tree" if dropping else None)
    dropping = True
    with pytest.raises(SimulatedCrash, match="inside drop_tree"):
        s.drop_tree("t")
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert s.tree("t").get(b"a") == b"1"  # the catalog change never happened


def test_crash_in_the_middle_of_drop_tree_is_finished_at_open() -> None:
    disk = SimulatedDisk()
    s = Store.open("s", backend=disk)
    s.tree("t").set(b"a", b"1")
    writes = disk.writes
    disk.arm(after=1)  # after the catalog batch, before the purge
    with pytest.raises(SimulatedCrash):
        s.drop_tree("t")
    assert disk.writes == writes + 1
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert "t" not in s.tree_names()
    assert s.tree("t").get(b"a") is None


def test_observer_sees_every_write() -> None:
    disk = SimulatedDisk()
    seen: list[tuple[str, int, bool]] = []
    disk.observer = lambda path, ops, synced: seen.append((path, len(ops), synced))
    s = Store.open("s", backend=disk)
    s.tree("t").set(b"a", b"1")
    _synced_marker(s)
    assert seen[-2][1] == 1 and not seen[-2][2]
    assert seen[-1][2]


def test_durable_writes_behind_a_lost_one_survive_every_later_power_loss() -> None:
    """A durable write queued behind an unsynced one (log rotation) stays durable."""
    disk = SimulatedDisk(flush_after=(1000, 1000))
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    s.flush()
    disk.write_buffer_bytes = 64
    t.set(b"big", b"x" * 100)  # unsynced, fills the memtable
    synced = Batch()
    synced.insert(b"new", b"1", tree="t")
    s.apply_batch(synced, sync=True)  # rotates first: "big" stays unsynced in the old log
    assert disk.crash(power_loss=True).lost == 1
    disk.reboot()
    s = Store.open("s", backend=disk)
    assert s.tree("t").get(b"new") == b"1" and s.tree("t").get(b"big") is None
    s.tree("t").set(b"more", b"2")  # unsynced: the next power cut loses it, not "new"
    disk.crash(power_loss=True)
    disk.reboot()
    assert Store.open("s", backend=disk).tree("t").get(b"new") == b"1"


def test_flush_makes_everything_durable_and_may_be_crashed_before() -> None:
    disk = SimulatedDisk(flush_after=(1000, 1000))
    s = Store.open("s", backend=disk)
    t = s.tree("t")
    disk.write_buffer_bytes = 64
    t.set(b"big", b"x" * 100)
    t.set(b"b", b"2")
    assert disk.unsynced() >= 1
    s.flush()
    assert disk.unsynced() == 0
    t.set(b"c", b"3")
    disk.arm()
    with pytest.raises(SimulatedCrash):
        s.flush()


def test_a_power_loss_that_keeps_a_later_watched_write_reports_a_hole() -> None:
    disk = SimulatedDisk(flush_after=(1000, 1000))
    s = Store.open("s", backend=disk)
    sm = s.tree("sm")
    s.tree("log")
    s.flush()
    disk.watched = lambda key: key[:4] == sm.tree_id.to_bytes(4, "big")
    disk.write_buffer_bytes = 64
    sm.set(b"a", b"x" * 100)  # unsynced; then the log rotates
    sm.set(b"b", b"1")
    synced = Batch()
    synced.insert(b"log", b"1", tree="log")
    s.apply_batch(synced, sync=True)  # syncs "b" (same generation), not "a"
    report = disk.crash(power_loss=True)
    assert report.lost == 1 and report.holes == 1
