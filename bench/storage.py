"""Storage benchmark: nexus_raft Store vs raw plyvel vs sqlite3 (WAL), in one run.

Usage::

    .venv/bin/python bench/storage.py            # what `make bench` runs
    .venv/bin/python bench/storage.py --n 2000 --rounds 1 --sync-n 20   # quick

Every system does the same work on the same keys (``user:%08d``, 100-byte
values) in its own directory under one temporary root. The work of each
operation is cut into chunks of 1,000 items (scans: 10,000; fsync'd puts: 20) and the
systems take turns chunk by chunk; each chunk is timed ``--rounds`` times and
the fastest time of each chunk counts. Other processes sharing the CPU then
cannot tilt the comparison: a stall spoils one sample of one chunk, not a
system's whole run. Times are CPU seconds of the benchmark thread (where
plyvel, LevelDB's write path and sqlite3 do all their work), which other
processes competing for the CPU cannot inflate; the fsync'd put, which is
waiting for the disk, is timed on the wall clock. Before each operation every
database is compacted, so
background compaction started by the previous operation does not land in
this one. The last column is Store's throughput divided by raw plyvel's
(goal: >= 0.8 for get and scan, >= 0.7 for put and batch put).

Baselines, written the way a user of each would:
- raw plyvel: ``db.put``/``db.get``/``db.iterator(prefix=)``/``db.write_batch()``;
  CAS is get + compare + put under a ``threading.Lock``.
- sqlite3: one ``WITHOUT ROWID`` table in WAL mode, autocommit,
  ``synchronous=NORMAL`` (``FULL`` for the fsync'd put); CAS is one
  ``UPDATE ... WHERE k=? AND v=?``; batch put is ``executemany`` in a transaction.
- Store: the methods of ``store.tree("bench")``; fsync'd puts use a store
  opened with ``sync=True``.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plyvel

from nexus_raft.storage import Batch, Store

VALUE = b"v" * 100
SWAPPED = b"w" * 100
BATCH_SIZE = 1000
CHUNK = 1000  # items per timed sample (the systems take turns per chunk)
SYNC_CHUNK = 20
OPS = ["put", "get", "prefix scan", "batch put", "CAS", "fsync'd put"]
SYSTEMS = ["raw plyvel", "Store", "sqlite3 (WAL)"]


def make_keys(n: int) -> list[bytes]:
    return [b"user:%08d" % i for i in range(n)]


class Workload:
    """The operations of one system; each returns the number of items it handled."""

    def put(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def get(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def scan(self, prefix: bytes) -> int:
        raise NotImplementedError

    def batch(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def cas(self, keys: list[bytes], expected: bytes, new: bytes) -> int:
        """Swap each key from ``expected`` to ``new``; return how many swapped."""
        raise NotImplementedError

    def sync_put(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def settle(self) -> None:
        """Bring the files to a steady state, so background compaction triggered
        by the previous operation does not land inside the next measurement."""

    def close(self) -> None:
        raise NotImplementedError


class RawPlyvel(Workload):
    def __init__(self, root: Path) -> None:
        self.db = plyvel.DB(str(root / "plyvel"), create_if_missing=True)
        self.lock = threading.Lock()
        # Noise keys on both sides of the scanned prefix, as in the other systems.
        self.db.put(b"aaa", VALUE)
        self.db.put(b"zzz", VALUE)

    def put(self, keys: list[bytes]) -> int:
        put = self.db.put
        for key in keys:
            put(key, VALUE)
        return len(keys)

    def get(self, keys: list[bytes]) -> int:
        get = self.db.get
        for key in keys:
            get(key)
        return len(keys)

    def scan(self, prefix: bytes) -> int:
        n = 0
        for _key, _value in self.db.iterator(prefix=prefix):
            n += 1
        return n

    def batch(self, keys: list[bytes]) -> int:
        with self.db.write_batch() as wb:
            for key in keys:
                wb.put(key, VALUE)
        return len(keys)

    def cas(self, keys: list[bytes], expected: bytes, new: bytes) -> int:
        get, put, lock = self.db.get, self.db.put, self.lock
        swapped = 0
        for key in keys:
            with lock:
                if get(key) == expected:
                    put(key, new)
                    swapped += 1
        return swapped

    def sync_put(self, keys: list[bytes]) -> int:
        put = self.db.put
        for key in keys:
            put(key, VALUE, sync=True)
        return len(keys)

    def settle(self) -> None:
        self.db.compact_range()

    def close(self) -> None:
        self.db.close()


class NexusStore(Workload):
    def __init__(self, root: Path) -> None:
        self.store = Store.open(root / "store")
        self.sync_store = Store.open(root / "store-sync", sync=True)
        self.tree = self.store.tree("bench")
        self.sync_tree = self.sync_store.tree("bench")
        self.store.tree("a").set(b"aaa", VALUE)  # other trees' keys exist, as in real use
        self.store.tree("z").set(b"zzz", VALUE)

    def put(self, keys: list[bytes]) -> int:
        put = self.tree.set
        for key in keys:
            put(key, VALUE)
        return len(keys)

    def get(self, keys: list[bytes]) -> int:
        get = self.tree.get
        for key in keys:
            get(key)
        return len(keys)

    def scan(self, prefix: bytes) -> int:
        n = 0
        for _key, _value in self.tree.scan_prefix(prefix):
            n += 1
        return n

    def batch(self, keys: list[bytes]) -> int:
        batch = Batch()
        insert = batch.insert
        for key in keys:
            insert(key, VALUE)
        self.tree.apply_batch(batch)
        return len(keys)

    def cas(self, keys: list[bytes], expected: bytes, new: bytes) -> int:
        cas = self.tree.compare_and_swap
        swapped = 0
        for key in keys:
            if cas(key, expected, new):
                swapped += 1
        return swapped

    def sync_put(self, keys: list[bytes]) -> int:
        put = self.sync_tree.set
        for key in keys:
            put(key, VALUE)
        return len(keys)

    def settle(self) -> None:
        self.store.compact()
        self.sync_store.compact()

    def close(self) -> None:
        self.store.close()
        self.sync_store.close()


class Sqlite(Workload):
    def __init__(self, root: Path) -> None:
        self.conn = self._connect(root / "kv.sqlite", "NORMAL")
        self.sync_conn = self._connect(root / "kv-sync.sqlite", "FULL")
        self.conn.execute("INSERT INTO kv VALUES (?, ?)", (b"aaa", VALUE))
        self.conn.execute("INSERT INTO kv VALUES (?, ?)", (b"zzz", VALUE))

    @staticmethod
    def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        return conn

    def put(self, keys: list[bytes]) -> int:
        execute = self.conn.execute
        for key in keys:
            execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, VALUE))
        return len(keys)

    def get(self, keys: list[bytes]) -> int:
        execute = self.conn.execute
        for key in keys:
            execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return len(keys)

    def scan(self, prefix: bytes) -> int:
        end = prefix[:-1] + bytes((prefix[-1] + 1,))
        n = 0
        for _row in self.conn.execute(
            "SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (prefix, end)
        ):
            n += 1
        return n

    def batch(self, keys: list[bytes]) -> int:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", [(k, VALUE) for k in keys])
        self.conn.execute("COMMIT")
        return len(keys)

    def cas(self, keys: list[bytes], expected: bytes, new: bytes) -> int:
        execute = self.conn.execute
        swapped = 0
        for key in keys:
            sql = "UPDATE kv SET v = ? WHERE k = ? AND v = ?"
            swapped += execute(sql, (new, key, expected)).rowcount
        return swapped

    def sync_put(self, keys: list[bytes]) -> int:
        execute = self.sync_conn.execute
        for key in keys:
            execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, VALUE))
        return len(keys)

    def settle(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.conn.close()
        self.sync_conn.close()


def timed(fn: Callable[[], int], expected: int, clock: Callable[[], float]) -> float:
    """Time of one call on ``clock``; the call must handle exactly ``expected`` items."""
    gc.disable()  # as timeit does: a collection landing in one system's sample is noise
    try:
        start = clock()
        items = fn()
        elapsed = clock() - start
    finally:
        gc.enable()
    if items != expected:
        raise AssertionError(f"handled {items} items, expected {expected}")
    return elapsed


Job = Callable[[Workload], int]


def jobs(op: str, keys: list[bytes], shuffled: list[bytes], sync_n: int,
         round_no: int) -> list[tuple[Job, int]]:
    """The chunks of ``op`` for one round: (job, items it must handle)."""
    def chunks(seq: list[bytes], size: int) -> list[list[bytes]]:
        return [seq[i:i + size] for i in range(0, len(seq), size)]

    if op == "put":
        return [(lambda w, c=c: w.put(c), len(c)) for c in chunks(keys, CHUNK)]
    if op == "get":
        return [(lambda w, c=c: w.get(c), len(c)) for c in chunks(shuffled, CHUNK)]
    if op == "prefix scan":
        # Scans are cheap per item, so sample longer ones: "user:0000" covers
        # 10,000 consecutive keys ("user:00000" 1,000 when n is small).
        size, digits = (10 * CHUNK, 4) if len(keys) % (10 * CHUNK) == 0 else (CHUNK, 5)
        prefixes = [b"user:%0*d" % (digits, i) for i in range(len(keys) // size)]
        return [(lambda w, p=p: w.scan(p), size) for p in prefixes]
    if op == "batch put":
        return [(lambda w, c=c: w.batch(c), len(c)) for c in chunks(keys, BATCH_SIZE)]
    if op == "CAS":
        # Every key holds VALUE after the batch put; rounds alternate the direction
        # so every CAS succeeds.
        old, new = (VALUE, SWAPPED) if round_no % 2 == 0 else (SWAPPED, VALUE)
        return [(lambda w, c=c: w.cas(c, old, new), len(c)) for c in chunks(shuffled, CHUNK)]
    if op == "fsync'd put":
        return [(lambda w, c=c: w.sync_put(c), len(c)) for c in chunks(keys[:sync_n], SYNC_CHUNK)]
    raise ValueError(op)


def run(n: int, rounds: int, sync_n: int) -> dict[str, dict[str, float]]:
    """Throughput (items/s) of every operation for every system."""
    root = Path(tempfile.mkdtemp(prefix="nexus-bench-"))
    try:
        systems: dict[str, Workload] = {
            "raw plyvel": RawPlyvel(root),
            "Store": NexusStore(root),
            "sqlite3 (WAL)": Sqlite(root),
        }
        keys = make_keys(n)
        shuffled = list(keys)
        random.Random(7).shuffle(shuffled)
        rates: dict[str, dict[str, float]] = {s: {} for s in SYSTEMS}
        for op in OPS:
            for system in systems.values():
                system.settle()
            fastest: dict[str, list[float]] = {}
            items = 0
            # CPU time of this thread: what the library costs, unaffected by
            # other processes taking the CPU away (LevelDB and sqlite do this
            # work in the calling thread). An fsync'd put mostly waits for the
            # disk, which only the wall clock sees.
            clock = time.perf_counter if op == "fsync'd put" else time.thread_time
            for round_no in range(rounds):
                round_jobs = jobs(op, keys, shuffled, sync_n, round_no)
                items = sum(count for _, count in round_jobs)
                for i, (job, count) in enumerate(round_jobs):
                    for name in SYSTEMS:
                        elapsed = timed(lambda job=job, w=systems[name]: job(w), count, clock)
                        row = fastest.setdefault(name, [])
                        if i == len(row):
                            row.append(elapsed)
                        else:
                            row[i] = min(row[i], elapsed)
            for name in SYSTEMS:
                rates[name][op] = items / sum(fastest[name])
        for system in systems.values():
            system.close()
        return rates
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fmt(rate: float) -> str:
    return f"{rate:,.0f}"


def table(best: dict[str, dict[str, float]]) -> str:
    lines = [
        "| operation (ops/s) | raw plyvel | Store | sqlite3 (WAL) | Store ÷ plyvel |",
        "|---|---:|---:|---:|---:|",
    ]
    for op in OPS:
        plyvel_rate = best["raw plyvel"][op]
        store_rate = best["Store"][op]
        ratio = store_rate / plyvel_rate if plyvel_rate else float("nan")
        lines.append(
            f"| {op} | {fmt(plyvel_rate)} | {fmt(store_rate)} | "
            f"{fmt(best['sqlite3 (WAL)'][op])} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="keys per operation")
    parser.add_argument("--rounds", type=int, default=4, help="samples per chunk (fastest kept)")
    parser.add_argument("--sync-n", type=int, default=200, help="fsync'd puts per round")
    args = parser.parse_args(argv)
    if args.n < CHUNK or args.n % CHUNK or args.rounds < 1 or args.sync_n < 1:
        parser.error(f"need --n a positive multiple of {CHUNK}, --rounds >= 1, --sync-n >= 1")
    start = time.perf_counter()
    best = run(args.n, args.rounds, args.sync_n)
    print(f"storage benchmark: n={args.n}, rounds={args.rounds} (fastest of each chunk kept; "
          "thread CPU time, fsync'd put: wall clock), "
          f"fsync'd n={args.sync_n}, 100-byte values, batches of {BATCH_SIZE}, "
          f"Python {sys.version.split()[0]}, plyvel {plyvel.__version__}, "
          f"LevelDB {plyvel.__leveldb_version__}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs")
    print()
    print(table(best))
    print()
    print(f"took {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

