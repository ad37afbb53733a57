"""The embedded-store demo: write, scan, CAS, batch, watch, reopen, a small timing.

Everything happens in a temporary directory that is removed at the end. The
output is meant for people; run it with ``python -m nexus_raft.demo --storage``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nexus_raft.errors import StoreLockedError
from nexus_raft.storage import Batch, Store

__all__ = ["run_storage_demo"]

TIMING_KEYS = 20_000


def _say(text: str = "") -> None:
    # The demo's output is its user interface, not logging.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _rate(count: int, fn: Callable[[], None]) -> str:
    start = time.perf_counter()
    fn()
    return f"{count / (time.perf_counter() - start):>12,.0f} ops/s"


def _write_and_scan(store: Store) -> None:
    _say("1. write and scan")
    users = store.tree("users")
    for name, role in [("alice", "admin"), ("bob", "dev"), ("carol", "dev"), ("dave", "ops")]:
        users.set_json(f"user/{name}", {"name": name, "role": role})
    store.tree("sessions").set("user/alice", b"token-1")  # another tree: isolated
    _say(f"   trees: {store.tree_names()}")
    for key, value in users.scan_prefix("user/c"):
        _say(f"   scan 'user/c' -> {key.decode()} = {value.decode()}")
    first, last = users.first(), users.last()
    assert first is not None and last is not None
    _say(f"   first key {first[0].decode()}, last key {last[0].decode()}")
    _say(f"   range [user/b, user/d): {[k.decode() for k, _ in users.range('user/b', 'user/d')]}")


def _compare_and_swap(store: Store) -> None:
    _say("2. compare-and-swap")
    locks = store.tree("locks")
    _say(f"   worker-1 claims 'job-7': {locks.compare_and_swap('job-7', None, b'worker-1')}")
    _say(f"   worker-2 claims 'job-7': {locks.compare_and_swap('job-7', None, b'worker-2')}")
    released = locks.compare_and_swap("job-7", b"worker-1", None)
    _say(f"   worker-1 releases it:    {released}")
    counters = store.tree("counters")
    for _ in range(3):
        counters.update_and_fetch("visits", lambda old: str(int(old or b"0") + 1).encode())
    _say(f"   counter after 3 atomic increments: {counters.get('visits')!r}")


def _batch_and_watch(store: Store) -> None:
    _say("3. atomic batch across trees, seen by a watcher and a snapshot")
    accounts = store.tree("accounts")
    accounts.set("alice", b"100")
    accounts.set("bob", b"0")
    watcher = accounts.watch_prefix("")
    before = store.snapshot()
    batch = Batch()
    batch.insert("alice", b"70")
    batch.insert("bob", b"30")
    batch.insert("tx/1", b"alice->bob 30", tree="ledger")
    _say(f"   before apply: bob = {accounts.get('bob')!r} (the batch is not visible yet)")
    accounts.apply_batch(batch)
    _say(f"   after apply:  alice = {accounts.get('alice')!r}, bob = {accounts.get('bob')!r}, "
         f"ledger = {store.tree('ledger').get('tx/1')!r}")
    while (event := watcher.get(timeout=0)) is not None:
        _say(f"   watch event: {event.key.decode()} -> {event.value!r}")
    watcher.close()
    with before:
        old = dict(before.tree("accounts").iter())
        _say(f"   snapshot taken before the batch still reads: {old}")


def _reopen(path: Path) -> None:
    _say("4. close and reopen")
    with Store.open(path) as store:
        ids = [store.generate_id() for _ in range(3)]
        _say(f"   ids before reopen: {ids}")
        try:
            Store.open(path)
        except StoreLockedError:
            _say("   a second open of the same path is refused (StoreLockedError)")
    with Store.open(path) as store:
        users = store.tree("users")
        _say(f"   after reopen: {users.count()} users, trees {store.tree_names()}")
        _say(f"   next id after reopen: {store.generate_id()} (strictly larger)")


def _timing(path: Path) -> None:
    _say(f"5. timing ({TIMING_KEYS:,} keys of 100 bytes, one thread)")
    keys = [b"bench/%08d" % i for i in range(TIMING_KEYS)]
    value = b"x" * 100
    with Store.open(path) as store:
        tree = store.tree("bench")

        def put() -> None:
            for key in keys:
                tree.set(key, value)

        def get() -> None:
            for key in keys:
                tree.get(key)

        def scan() -> None:
            for _ in tree.scan_prefix(b"bench/"):
                pass

        def batch() -> None:
            b = Batch()
            for key in keys:
                b.insert(key, value)
            tree.apply_batch(b)

        _say(f"   put          {_rate(TIMING_KEYS, put)}")
        _say(f"   get          {_rate(TIMING_KEYS, get)}")
        _say(f"   prefix scan  {_rate(TIMING_KEYS, scan)}")
        _say(f"   batch put    {_rate(TIMING_KEYS, batch)}")
    _say("   (bench/storage.py compares these with raw plyvel and sqlite3)")


def run_storage_demo() -> int:
    """Run the storage demo in a temporary directory; returns the exit status."""
    workdir = Path(tempfile.mkdtemp(prefix="nexus-store-demo-"))
    path = workdir / "store"
    started = time.monotonic()
    _say(f"nexus_raft embedded store demo (LevelDB at {path})")
    try:
        with Store.open(path) as store:
            _write_and_scan(store)
            _compare_and_swap(store)
            _batch_and_watch(store)
        _reopen(path)
        _timing(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _say(f"done in {time.monotonic() - started:.1f}s; temporary store removed")
    return 0
