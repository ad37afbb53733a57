"""Slow watchers against a leader: write latency and the leader's memory.

Three ``nexus-node`` processes. A writer puts values one at a time through
the ``Client`` and records each put's latency. Then ``--watchers`` watch
streams are opened on the leader from one gRPC connection and never read
(a careless or hostile reader), and the writer runs again while every write
is published to all of them. Printed: write p50/p99 and the leader's RSS
before and during, so a change to the watch limits can be compared.

    python bench/slow_watchers.py --watchers 200 --writes 2000 --value 512
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cluster_common import print_table, rss_mb
from _nexus import NexusCluster

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc


async def _writes(endpoints: list[str], n: int, value: bytes, tag: str) -> list[float]:
    out = []
    async with Client(endpoints, timeout=10.0) as client:
        for i in range(n):
            t0 = time.perf_counter()
            await client.put(f"w/{tag}/{i % 1000}", value)
            out.append(time.perf_counter() - t0)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(cluster: NexusCluster, watchers: int, writes: int, size: int) -> None:
    rows = []
    if cluster:
        leader = await cluster.leader()
        popen = cluster.procs[leader].popen
        assert popen is not None
        pid = popen.pid
        value = b"v" * size
        await _writes(cluster.endpoints, 200, value, "warm")
        base = await _writes(cluster.endpoints, writes, value, "base")
        rss_before = rss_mb([pid])[0]
        rows.append(["no watchers", f"{_pct(base, 0.5):.2f}", f"{_pct(base, 0.99):.2f}",
                     f"{rss_before:.0f}", "-"])  # fmt: skip
        # An application that never reads: without BDP probing its HTTP/2
        # window stays at 64 KiB, so gRPC stops taking data for it too.
        channel = grpc.aio.insecure_channel(
            cluster.endpoints[leader], options=[("grpc.http2.bdp_probe", 0)]
        )
        stub = kv_pb2_grpc.KVStub(channel)
        calls = [stub.Watch(kv_pb2.WatchRequest(prefix=b"w/")) for _ in range(watchers)]
        # Let the streams open (each answers its first message), then never read.
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        slow = await _writes(cluster.endpoints, writes, value, "slow")
        took = time.perf_counter() - t0
        rss_during = rss_mb([pid])[0]
        open_calls = sum(1 for c in calls if not c.done())
        rows.append([f"{watchers} unread watches", f"{_pct(slow, 0.5):.2f}",
                     f"{_pct(slow, 0.99):.2f}", f"{rss_during:.0f}",
                     f"{open_calls} open after {took:.1f}s"])  # fmt: skip
        for c in calls:
            c.cancel()
        await channel.close()
    print_table(
        ["leader", "put p50 ms", "put p99 ms", "leader RSS MB", "watch streams"],
        rows,
        title=f"{writes} sequential puts of {size} B, watchers on one connection to the leader",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--value", type=int, default=512)
    args = parser.parse_args()
    cluster = NexusCluster()
    cluster.start()
    try:
        asyncio.run(run(cluster, args.watchers, args.writes, args.value))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
