"""Scale curves of a 3-member nexus_raft cluster: data size, value size, restart, snapshot catch-up.

Usage::

    python bench/scale.py                               # 1M keys, every value size, catch-up
    python bench/scale.py --keys 1000000,10000000       # the 10M point too (fill takes a while)
    python bench/scale.py --only catchup --snapshot-mib 1024

For each key count N (``--keys``), a fresh cluster (three ``nexus-node``
processes, fsync on, defaults) is filled with N keys of 256 bytes through
``Batch`` RPCs (128 puts per batch, one log entry each), then:

* for each value size (``--values``): writes over the N keys (so the data
  size stays N keys) from 1 and 64 concurrent clients for ``--duration``
  seconds: writes/s, p50 and p99;
* RSS of every member (from /proc);
* restart: kill -9 of a follower, time until it answers Status with its old
  applied index; kill -9 of all three, time until the first linearizable get.

Catch-up (``--snapshot-mib``): a fresh cluster is filled with that many MiB
of 1 MiB values and snapshotted; a fourth member then joins as a learner
(empty data directory) and catches up from the snapshot. The time until it
has applied the leader's index and its RSS every 0.2 s are reported (flat
memory: the snapshot is streamed to disk and loaded in bounded batches).

Every number is printed as a table; the load average at the start and end
is printed with it (the box is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]

from _cluster_common import Proc, free_ports, print_table, rss_mb, run_load  # noqa: E402
from _nexus import _ENV, NexusCluster, _time_until, fill  # noqa: E402

from nexus_raft.kv.client.client import Client  # noqa: E402


def _value(size: int, worker: int, i: int) -> bytes:
    head = f"w{worker}-{i}-".encode()
    return head + b"x" * max(0, size - len(head))


async def _curve(cluster: NexusCluster, keys: int, sizes: list[int], duration: float,
                 rows: list[list[str]]) -> None:
    async with Client(cluster.endpoints, timeout=30.0) as client:
        for size in sizes:
            for clients in (1, 64):
                if size >= 1 << 20 and clients > 16:
                    clients = 16  # 64 MiB in flight buys nothing but memory

                async def write(w: int, i: int, size: int = size) -> None:
                    await client.put(b"big/%09d" % ((w * 7919 + i * 104729) % keys),
                                     _value(size, w, i))

                r = await run_load(write, clients, duration, warmup=0.5, op_timeout=30.0)
                rows.append([f"{keys:,}", _size(size), str(clients), f"{r.rate:,.0f}",
                             f"{r.rate * size / 2**20:,.1f}", f"{r.percentile(50):.2f}",
                             f"{r.percentile(99):.2f}", str(r.errors)])
                print("  " + " | ".join(rows[-1]), flush=True)


def _size(n: int) -> str:
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n // div} {unit}"
    return f"{n} B"


async def _restarts(cluster: NexusCluster, keys: int) -> list[list[str]]:
    rows: list[list[str]] = []
    leader = await cluster.leader()
    follower = next(i for i in range(3) if i != leader)
    applied = (await cluster.status(follower)).applied
    cluster.kill(follower)
    t = await _time_until(follower, cluster, applied)
    rows.append([f"{keys:,}", "kill -9 follower -> serving (Status with its applied index)",
                 f"{t:.2f} s"])
    for i in range(3):
        cluster.kill(i)
    t0 = time.monotonic()
    for p in cluster.procs:
        p.start()
    async with Client(cluster.endpoints, timeout=120) as c:
        got = await c.get(b"big/%09d" % (keys - 1))
    rows.append([f"{keys:,}", "kill -9 all three -> first linearizable get",
                 f"{time.monotonic() - t0:.2f} s"])
    if got is None:
        raise RuntimeError("the last filled key is missing after the restart")
    return rows


def run_keys(keys: int, sizes: list[int], duration: float, curve: list[list[str]],
             memory: list[list[str]], restart: list[list[str]]) -> None:
    cluster = NexusCluster()
    print(f"== {keys:,} keys", flush=True)
    try:
        cluster.start()
        secs = asyncio.run(fill(cluster, keys))
        print(f"  filled {keys:,} keys in {secs:.0f} s ({keys / secs:,.0f} keys/s)", flush=True)
        time.sleep(2.0)
        memory.append([f"{keys:,}", "after fill",
                       ", ".join(f"{r:.0f}" for r in rss_mb(cluster.pids()))])
        asyncio.run(_curve(cluster, keys, sizes, duration, curve))
        memory.append([f"{keys:,}", "after the value-size curve",
                       ", ".join(f"{r:.0f}" for r in rss_mb(cluster.pids()))])
        restart.extend(asyncio.run(_restarts(cluster, keys)))
        time.sleep(1.0)
        memory.append([f"{keys:,}", "after restarting all three",
                       ", ".join(f"{r:.0f}" for r in rss_mb(cluster.pids()))])
    finally:
        cluster.stop()


async def _catchup(cluster: NexusCluster, mib: int) -> list[list[str]]:
    value = b"s" * (1 << 20)
    async with Client(cluster.endpoints, timeout=60.0) as c:
        t0 = time.monotonic()
        done = 0
        while done < mib:
            n = min(8, mib - done)
            await asyncio.gather(*(c.put(b"snap/%06d" % (done + k), value) for k in range(n)))
            done += n
        fill_s = time.monotonic() - t0
        index = await c.snapshot()
        target = (await c.status()).commit
        # The fourth member: empty directory; it adds itself as a learner
        # through any member (--join) and catches up from the snapshot.
        port = free_ports(1)[0]
        address = f"127.0.0.1:{port}"
        t_join = time.monotonic()
        proc = Proc([sys.executable, "-m", "nexus_raft.cli.node", "--id", "4", "--listen",
                     address, "--join", cluster.endpoints[0], "--join-as", "learner",
                     "--data-dir", str(cluster.dir / "n4"), "--log-level", "warning"],
                    cluster.dir / "n4.log", env=_ENV)
        proc.start()
        cluster.procs.append(proc)  # stopped with the cluster
        samples: list[float] = []
        applied = 0
        while time.monotonic() - t_join < 600:
            assert proc.popen is not None
            samples.append(rss_mb([proc.popen.pid])[0])
            try:
                mine = await cluster_status(address)
                applied = mine.applied
            except Exception:
                applied = 0
            if applied >= target:
                break
            await asyncio.sleep(0.2)
        took = time.monotonic() - t_join
    return [
        ["data written", f"{mib:,} MiB in {fill_s:.1f} s (1 MiB values)"],
        ["snapshot index", f"{index:,}"],
        ["learner caught up (start to applied >= commit before it started)",
         f"{took:.1f} s" if applied >= target else f"NOT within {took:.0f} s"],
        ["learner RSS min / median / max (MiB)",
         f"{min(samples):.0f} / {sorted(samples)[len(samples) // 2]:.0f} / {max(samples):.0f}"],
        ["learner RSS samples (every 0.2 s, first 12 and last)",
         ", ".join(f"{s:.0f}" for s in samples[:12]) + f" ... {samples[-1]:.0f}"],
    ]


async def cluster_status(address: str):  # type: ignore[no-untyped-def]
    import grpc

    from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

    async with grpc.aio.insecure_channel(address) as ch:
        return await kv_pb2_grpc.KVStub(ch).Status(kv_pb2.StatusRequest(), timeout=1.0)


def run_catchup(mib: int) -> list[list[str]]:
    cluster = NexusCluster()
    print(f"== catch-up of a new member from a {mib:,} MiB snapshot", flush=True)
    try:
        cluster.start()
        return asyncio.run(_catchup(cluster, mib))
    finally:
        cluster.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", default="1000000", help="comma-separated key counts")
    ap.add_argument("--values", default="256,4096,65536,1048576",
                    help="comma-separated value sizes in bytes")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per curve point")
    ap.add_argument("--snapshot-mib", type=int, default=1024)
    ap.add_argument("--only", choices=("keys", "catchup"), default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    curve: list[list[str]] = []
    memory: list[list[str]] = []
    restart: list[list[str]] = []
    catchup: list[list[str]] = []
    if args.only in (None, "keys"):
        sizes = [int(v) for v in args.values.split(",")]
        for keys in (int(k) for k in args.keys.split(",")):
            run_keys(keys, sizes, args.duration, curve, memory, restart)
    if args.only in (None, "catchup"):
        catchup = run_catchup(args.snapshot_mib)
    print(f"\nload average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"{time.monotonic() - t0:.0f} s; {os.cpu_count()} CPUs, fsync on, 3 members")
    if curve:
        print_table(["keys", "value", "clients", "writes/s", "MiB/s", "p50 ms", "p99 ms",
                     "errors"], curve, title="write throughput and latency by data and value size")
        print_table(["keys", "when", "RSS per member (MiB)"], memory, title="memory")
        print_table(["keys", "restart", "time"], restart, title="restart")
    if catchup:
        print_table(["catch-up", "result"], catchup, title="new member from a snapshot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
