"""RaftNode benchmark: a 3-node loopback cluster, LevelDB with fsync, 256 B values.

Default (``--mode process``): one OS process per node (the deployment shape:
each node has its own GIL), started from ``bench/_node_member.py``; load runs
inside the leader's process as in-process ``propose`` calls, so the numbers
are the node layer's own (no client RPC hop; bench/cluster.py measures the
whole service). ``--mode inprocess`` keeps all three nodes in this process
and event loop (one GIL, harsher).

Measured in one run, side by side:
- the baseline: sequential fsync'd puts into raw plyvel (the floor of one write);
- ``propose`` with 1, 16, 64 and 256 in flight: ops/s, p50, p99, and CPU time
  per committed entry (the leader's process, and all three processes summed:
  the box is shared, so CPU/entry is the stable number, wall time is not);
- failover (process mode, ``--failover N``): kill -9 the leader, time until
  a write commits through the new leader.

    .venv/bin/python bench/node.py [--seconds 3] [--value-bytes 256] [--failover 3]
        [--mode process|inprocess] [--profile-leader DIR [--profile-clients N]
        [--profiler py-spy|perf]]   (profiles of all three members during one row)

py-spy samples the thread holding the GIL, native frames included (so a
syscall made under the GIL shows as such); ``perf`` samples every thread of
each member, kernel included (``perf report -i DIR/leader.data --sort dso``
splits the CPU between Python, gRPC, LevelDB, snappy and the kernel).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plyvel

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.commands import KVCommand, KVOp
from nexus_raft.kv.state_machine import KVStateMachine

CLIENTS = (1, 16, 64, 256)
Row = tuple[str, str, str, str, str, str]


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def baseline_fsync(root: Path, n: int, value: bytes) -> Row:
    """Sequential fsync'd puts into raw plyvel: ops/s, p50, p99, CPU per put."""
    db = plyvel.DB(str(root / "raw"), create_if_missing=True)
    lat = []
    c0, t0 = _cpu(), time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        db.put(b"k%08d" % i, value, sync=True)
        lat.append(time.perf_counter() - t)
    total, cpu = time.perf_counter() - t0, _cpu() - c0
    db.close()
    lat.sort()
    return ("raw plyvel put sync=True (1 in flight)", f"{n / total:,.0f}",
            f"{lat[n // 2] * 1e3:.2f}", f"{lat[int(n * 0.99)] * 1e3:.2f}",
            f"{cpu / n * 1e6:.0f}", "-")


def _row(clients: int, r: dict[str, Any], cluster_cpu: float | None) -> Row:
    n = max(r["n"], 1)
    return (f"propose, 3 nodes ({clients} in flight)", f"{r['n'] / r['elapsed']:,.0f}",
            f"{r['p50'] * 1e3:.2f}", f"{r['p99'] * 1e3:.2f}", f"{r['cpu'] / n * 1e6:.0f}",
            "-" if cluster_cpu is None else f"{cluster_cpu / n * 1e6:.0f}")


def print_table(title: str, rows: list[Row]) -> None:
    """The regression table."""
    print(title)
    head = ("case", "ops/s", "p50 ms", "p99 ms", "leader CPU us/op", "cluster CPU us/op")
    print(f"{head[0]:<40} {head[1]:>9} {head[2]:>8} {head[3]:>8} {head[4]:>17} {head[5]:>18}")
    for r in rows:
        print(f"{r[0]:<40} {r[1]:>9} {r[2]:>8} {r[3]:>8} {r[4]:>17} {r[5]:>18}")


# --- process mode ---------------------------------------------------------------------------


class Member:
    """One ``bench/_node_member.py`` process and its JSON-lines control pipe."""

    def __init__(self, node_id: int, data_dir: Path, peers: dict[int, str]) -> None:
        self.id = node_id
        self.args = [sys.executable, str(Path(__file__).with_name("_node_member.py")),
                     str(node_id), str(data_dir), json.dumps(peers)]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self._readline()
        if not json.loads(line).get("ready"):
            raise RuntimeError(f"member {self.id} did not start: {line!r}")

    def _readline(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"member {self.id} exited (rc {self.proc.poll()})")
        return line

    def send(self, **req: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def recv(self) -> dict[str, Any]:
        resp: dict[str, Any] = json.loads(self._readline())
        if "error" in resp:
            raise RuntimeError(f"member {self.id}: {resp['error']}")
        return resp

    def call(self, **req: Any) -> dict[str, Any]:
        self.send(**req)
        return self.recv()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.send(op="quit")
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


def _leader(members: list[Member], timeout: float = 15.0) -> Member:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if m.alive and m.call(op="status")["leader"]:
                return m
        time.sleep(0.02)
    raise RuntimeError("no leader")


def _failover(members: list[Member], value_bytes: int) -> float:
    """Kill -9 the leader; seconds until a write commits through a survivor."""
    old = _leader(members)
    t0 = time.perf_counter()
    old.kill()
    survivors = [m for m in members if m is not old]
    deadline = t0 + 30.0
    while time.perf_counter() < deadline:
        for m in survivors:
            if m.call(op="put1", value=value_bytes)["ok"]:
                elapsed = time.perf_counter() - t0
                old.start()
                return elapsed
        time.sleep(0.005)
    raise RuntimeError("no write committed within 30 s of the leader's death")


def run_processes(seconds: float, value_bytes: int, failovers: int,
                  profile_dir: Path | None, profile_clients: int = 64,
                  profiler: str = "py-spy") -> None:
    root = Path(tempfile.mkdtemp(prefix="nexus-bench-node-"))
    rows = [baseline_fsync(root, 300, b"x" * value_bytes)]
    ports = _ports(3)
    peers = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    members = [Member(i, root / f"n{i}", peers) for i in peers]
    failover_times: list[float] = []
    loop_name = "?"
    try:
        for m in members:
            m.start()
        members[0].call(op="wait_leader", timeout=15.0)
        leader = _leader(members)
        loop_name = leader.call(op="status")["loop"]
        leader.call(op="load", clients=4, seconds=0.5, value=value_bytes)  # warm up
        for clients in CLIENTS:
            before = [m.call(op="status")["cpu"] for m in members]
            spy = None
            if profile_dir is not None and clients == profile_clients:
                spy = _profile(profiler, profile_dir, leader, members, seconds)
            r = leader.call(op="load", clients=clients, seconds=seconds, value=value_bytes)
            after = [m.call(op="status")["cpu"] for m in members]
            if spy is not None:
                for p in spy:
                    p.wait()
            rows.append(_row(clients, r, sum(after) - sum(before)))
        for _ in range(failovers):
            failover_times.append(_failover(members, value_bytes))
            leader = _leader(members)
            leader.call(op="load", clients=4, seconds=0.5, value=value_bytes)  # settle
    finally:
        for m in members:
            m.stop()
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0]
    print_table(f"3 processes ({loop_name} event loop, BENCH_LOOP=asyncio|uvloop|auto), value "
                f"{value_bytes} B, {seconds:g} s per row, load average {load:.1f} on "
                f"{os.cpu_count()} CPUs", rows)
    if failover_times:
        print(f"failover (kill -9 leader -> next committed write), {len(failover_times)} runs: "
              f"median {statistics.median(failover_times) * 1e3:.0f} ms, "
              f"max {max(failover_times) * 1e3:.0f} ms")


def _profile(profiler: str, out: Path, leader: Member, members: list[Member],
             seconds: float) -> list[subprocess.Popen[bytes]]:
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    procs = []
    for m in members:
        assert m.proc is not None
        role = "leader" if m is leader else f"follower{m.id}"
        if profiler == "perf":
            procs.append(subprocess.Popen(
                ["perf", "record", "-g", "-F", "499", "-p", str(m.proc.pid), "-o",
                 str(out / f"{role}.data"), "--", "sleep", str(int(seconds))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            continue
        procs.append(subprocess.Popen(
            [spy, "record", "-p", str(m.proc.pid), "-d", str(int(seconds)), "-r", "200",
             "-f", "raw", "-o", str(out / f"{role}.txt"), "--gil", "--native"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


# --- in-process mode ------------------------------------------------------------------------


async def _worker(leader: RaftNode, cmd: Callable[[], bytes], stop: float,
                  lat: list[float]) -> None:
    while time.perf_counter() < stop:
        t = time.perf_counter()
        await leader.propose(cmd(), timeout=10.0)
        lat.append(time.perf_counter() - t)


async def run_inprocess(seconds: float, value_bytes: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="nexus-bench-node-"))
    value = b"x" * value_bytes
    rows = [baseline_fsync(root, 300, value)]
    ports = _ports(3)
    peers = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(3)}
    nodes = [RaftNode(NodeConfig(id=i, listen=peers[i], peers=peers, data_dir=root / f"n{i}"),
                      KVStateMachine()) for i in peers]
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
        for clients in CLIENTS:
            lat: list[float] = []
            stop = time.perf_counter() + seconds
            c0, t0 = _cpu(), time.perf_counter()
            await asyncio.gather(*(_worker(leader, cmd, stop, lat) for _ in range(clients)))
            elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
            lat.sort()
            n = len(lat)
            rows.append(_row(clients, {"n": n, "elapsed": elapsed, "p50": lat[n // 2],
                                       "p99": lat[min(n - 1, int(n * 0.99))], "cpu": cpu}, None))
    finally:
        for node in nodes:
            await node.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print_table(f"3 nodes in ONE process (CPU column = all three), value {value_bytes} B, "
                f"{seconds:g} s per row", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--value-bytes", type=int, default=256)
    ap.add_argument("--mode", choices=("process", "inprocess"), default="process")
    ap.add_argument("--failover", type=int, default=3, help="kill -9 rounds (process mode)")
    ap.add_argument("--profile-leader", type=Path, default=None,
                    help="py-spy raw profiles of all members during one row (--profile-clients)")
    ap.add_argument("--profile-clients", type=int, default=64,
                    help="the in-flight count of the row --profile-leader profiles")
    ap.add_argument("--profiler", choices=("py-spy", "perf"), default="py-spy")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level)
    if args.mode == "process":
        run_processes(args.seconds, args.value_bytes, args.failover, args.profile_leader,
                      args.profile_clients, args.profiler)
    else:
        asyncio.run(run_inprocess(args.seconds, args.value_bytes))


if __name__ == "__main__":
    main()
