"""In-process RaftNode benchmark: 3 nodes on loopback gRPC, LevelDB with fsync.

Measures, in one run:
- the baseline: one fsync'd LevelDB put (raw plyvel, sync=True), sequential;
- sequential ``propose`` latency (p50/p99) through the leader (one in flight);
- ``propose`` throughput with 1, 16, 64 and 256 concurrent proposers.

All three nodes share one Python process and event loop here (and so one
GIL), which is harsher than the multi-process ``bench/cluster.py``.

    .venv/bin/python bench/node.py [--seconds 3] [--value-bytes 256]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plyvel

from nexus_raft.consensus.config import NodeConfig
from nexus_raft.consensus.kv_commands import KVCommand, KVOp
from nexus_raft.consensus.kv_state_machine import KVStateMachine
from nexus_raft.consensus.node import RaftNode


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def baseline_fsync(root: Path, n: int, value: bytes) -> tuple[float, float]:
    """(p50 ms, ops/s) of sequential fsync'd puts into raw plyvel."""
    db = plyvel.DB(str(root / "raw"), create_if_missing=True)
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        db.put(b"k%08d" % i, value, sync=True)
        lat.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    db.close()
    return statistics.median(lat) * 1000, n / total


async def _worker(
    leader: RaftNode, cmd: Callable[[], bytes], stop: float, lat: list[float]
) -> None:
    while time.perf_counter() < stop:
        t = time.perf_counter()
        await leader.propose(cmd(), timeout=10.0)
        lat.append(time.perf_counter() - t)


async def run(seconds: float, value_bytes: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="nexus-bench-node-"))
    value = b"x" * value_bytes
    raw_p50, raw_ops = baseline_fsync(root, 300, value)
    ports = _ports(3)
    peers = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    nodes = [
        RaftNode(NodeConfig(id=i, listen=peers[i], peers=peers, data_dir=root / f"n{i}"),
                 KVStateMachine())
        for i in peers
    ]
    rows: list[tuple[str, str, str, str]] = [
        ("raw plyvel put sync=True (1 in flight)", f"{raw_ops:,.0f}", f"{raw_p50:.2f}", "-"),
    ]
    try:
        for node in nodes:
            await node.start()
        leader_id = await nodes[0].wait_for_leader(5.0)
        leader = next(n for n in nodes if n.id == leader_id)
        seq = 0

        def cmd() -> bytes:
            nonlocal seq
            seq += 1
            return KVCommand(KVOp.PUT, b"bench/%d" % (seq % 10_000), value).encode()

        for _ in range(200):  # warm up
            await leader.propose(cmd())
        for clients in (1, 16, 64, 256):
            lat: list[float] = []
            stop = time.perf_counter() + seconds
            t0 = time.perf_counter()
            await asyncio.gather(*(_worker(leader, cmd, stop, lat) for _ in range(clients)))
            elapsed = time.perf_counter() - t0
            lat.sort()
            p50 = lat[len(lat) // 2] * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            rows.append((f"RaftNode propose, 3 nodes ({clients} in flight)",
                         f"{len(lat) / elapsed:,.0f}", f"{p50:.2f}", f"{p99:.2f}"))
        saves = leader._driver.saves if leader._driver is not None else 0
        commit = leader.status().commit
    finally:
        for node in nodes:
            await node.shutdown()
    print(f"value {value_bytes} B, {seconds:.0f} s per row; leader did {saves} fsync'd saves "
          f"for {commit} entries")
    print(f"{'case':<48} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, ops, p50s, p99s in rows:
        print(f"{name:<48} {ops:>10} {p50s:>8} {p99s:>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--value-bytes", type=int, default=256)
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level)
    asyncio.run(run(args.seconds, args.value_bytes))


if __name__ == "__main__":
    main()
