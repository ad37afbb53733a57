"""3-node loopback cluster benchmark: nexus_raft vs PySyncObj vs etcd 3.4, same harness.

Usage::

    python bench/cluster.py                      # throughput/latency/reads/failover, all systems
    python bench/cluster.py --systems nexus,etcd --duration 3
    python bench/cluster.py --only restart       # nexus: restart with 1,000,000 log entries
    python bench/cluster.py --only rss           # nexus: RSS per node holding 1,000,000 keys

Every system runs as three processes on 127.0.0.1 and is driven from this
process by the same load loop (:func:`_cluster_common.run_load`): N
concurrent asyncio workers, each doing sequential 256-byte writes for a fixed
duration. Failover is SIGKILL of the leader until the first write invoked
after the kill commits (median of a few runs). etcd is Debian's etcd-server
3.4 (installed with apt-get when missing; skipped with a note if that fails).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# bench/ for the helper modules; the repository root so a checkout runs
# without `pip install -e .` (make bench installs it anyway).
_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]

from _cluster_common import (  # noqa: E402
    ClusterUnderTest,
    LoadResult,
    cpu_count_note,
    key_for,
    measure_failover,
    median,
    print_table,
    run_load,
    value_for,
)

CONCURRENCY = (1, 16, 64, 256)
READ_CONCURRENCY = 64


@dataclass
class SystemResult:
    """Everything measured for one system."""

    name: str
    note: str
    writes: dict[int, LoadResult] = field(default_factory=dict)
    # CPU seconds of the three member processes (user + system) per write, by clients.
    member_cpu: dict[int, float] = field(default_factory=dict)
    reads: LoadResult | None = None
    failover: list[float] = field(default_factory=list)
    error: str = ""


async def _measure(cluster: ClusterUnderTest, args: argparse.Namespace, res: SystemResult) -> None:
    client = await cluster.connect()
    try:
        for n in (*CONCURRENCY, *cluster.extra_concurrency):

            async def write(w: int, i: int) -> None:
                await client.put(key_for(w, i), value_for(w, i))

            warmup = 0.5 if n <= 256 else 1.5
            pids = cluster.pids()
            cpu0, t0 = _members_cpu(pids), time.monotonic()
            res.writes[n] = await run_load(write, n, args.duration, warmup=warmup)
            r = res.writes[n]
            # Whole run (warmup included) against the writes completed in it.
            spent, took = _members_cpu(pids) - cpu0, time.monotonic() - t0
            done = r.rate * took if r.rate else 0.0
            res.member_cpu[n] = spent / done if done else float("nan")
            print(
                f"  {res.name}: {n:>3} writers  {r.rate:8.0f} writes/s  "
                f"p50 {r.percentile(50):6.2f} ms  p99 {r.percentile(99):7.2f} ms  "
                f"errors {r.errors}  driver CPU {r.client_cpu:.0%}  "
                f"members {res.member_cpu[n] * 1e6:,.0f} us/write",
                flush=True,
            )
        hot = [f"read/{i}".encode() for i in range(16)]
        for k in hot:
            await client.put(k, value_for(0, 0))

        async def read(w: int, i: int) -> None:
            got = await client.get(hot[(w + i) % len(hot)])
            if got is None:
                raise AssertionError("read lost a written key")

        res.reads = await run_load(read, READ_CONCURRENCY, args.duration)
        print(
            f"  {res.name}: {READ_CONCURRENCY} readers  {res.reads.rate:8.0f} reads/s  "
            f"p50 {res.reads.percentile(50):6.2f} ms  driver CPU {res.reads.client_cpu:.0%}",
            flush=True,
        )
    finally:
        await client.close()
    if args.failover_runs:
        res.failover = await measure_failover(cluster, args.failover_runs)
        shown = ", ".join(f"{t * 1000:.0f}" for t in res.failover)
        print(f"  {res.name}: failover ms: {shown}", flush=True)


def _members_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc; gone processes count 0)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _run_system(factory: Callable[[], ClusterUnderTest], args: argparse.Namespace) -> SystemResult:
    cluster = factory()
    res = SystemResult(cluster.name, cluster.note)
    print(f"\n== {cluster.name} ({cluster.note})", flush=True)
    t0 = time.monotonic()
    try:
        cluster.start()
        asyncio.run(_measure(cluster, args, res))
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        print(f"  {cluster.name} FAILED: {res.error}", flush=True)
    finally:
        cluster.stop()
    print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)
    return res


def _factories(names: list[str]) -> list[tuple[str, Callable[[], ClusterUnderTest]]]:
    out: list[tuple[str, Callable[[], ClusterUnderTest]]] = []
    for name in names:
        if name == "nexus":
            from _nexus import NexusCluster

            out.append((name, NexusCluster))
        elif name == "pysyncobj":
            from _pysyncobj import PySyncObjCluster

            out.append((name, PySyncObjCluster))
        elif name == "etcd":
            import _etcd

            reason = _etcd.ensure_installed()
            if reason is not None:
                print(f"\n== etcd skipped: {reason}", flush=True)
                continue
            out.append((name, _etcd.EtcdCluster))
        else:
            raise SystemExit(f"unknown system {name!r} (choose from nexus, pysyncobj, etcd)")
    return out


def _best(r: SystemResult) -> str:
    if not r.writes:
        return "-"
    n, best = max(r.writes.items(), key=lambda kv: kv[1].rate)
    return f"{best.rate:,.0f} ({n})"


def _fmt(v: float, unit: str = "") -> str:
    return "-" if v != v else f"{v:,.0f}{unit}"  # NaN -> "-"


def report(results: list[SystemResult]) -> None:
    """Print the side-by-side table."""
    headers = ["metric", *(r.name for r in results)]
    rows: list[list[str]] = []
    for n in CONCURRENCY:
        rows.append(
            [f"writes/s, {n} clients"]
            + [_fmt(r.writes[n].rate) if n in r.writes else "-" for r in results]
        )
    rows.append(["best writes/s (clients)"] + [_best(r) for r in results])
    for n in (1, 64, 256):
        rows.append(
            [f"members' CPU us/write, {n} clients"]
            + [_fmt(r.member_cpu[n] * 1e6) if n in r.member_cpu else "-" for r in results]
        )
    for n in (1, 64):
        rows.append(
            [f"write p50 / p99 ms, {n} clients"]
            + [
                f"{r.writes[n].percentile(50):.2f} / {r.writes[n].percentile(99):.2f}"
                if n in r.writes
                else "-"
                for r in results
            ]
        )
    rows.append(
        [f"linearizable reads/s, {READ_CONCURRENCY} clients"]
        + [_fmt(r.reads.rate) if r.reads else "-" for r in results]
    )
    rows.append(["failover ms (median)"] + [_fmt(median(r.failover) * 1000) for r in results])
    print_table(headers, rows, title=f"Cluster benchmark ({cpu_count_note()})")
    for r in results:
        print(f"  {r.name}: {r.note}" + (f"  [FAILED: {r.error}]" if r.error else ""))
    _print_goals(results)


def _print_goals(results: list[SystemResult]) -> None:
    """Issue #14's goals against the baselines measured in this run."""
    by = {r.name.split()[0].lower(): r for r in results}
    nexus, pso, etcd = by.get("nexus_raft"), by.get("pysyncobj"), by.get("etcd")
    if nexus is None or not nexus.writes:
        return
    print("\nGoals (nexus_raft vs the baselines measured above):")
    best_pso = max((x.rate for x in pso.writes.values()), default=0.0) if pso else 0.0
    if etcd and 1 in etcd.writes and 1 in nexus.writes and etcd.writes[1].rate:
        ours, theirs = nexus.writes[1], etcd.writes[1]
        print(
            f"  1 client: p50 {ours.percentile(50):.2f} ms (goal <= 1.5 ms and <= 1.25x etcd's "
            f"{theirs.percentile(50):.2f} ms: {ours.percentile(50) / theirs.percentile(50):.2f}x); "
            f"throughput {ours.rate / theirs.rate:.2f}x etcd (goal >= 0.8x)"
        )
    for n in (16, 64, 256):
        if n in nexus.writes and etcd and n in etcd.writes and etcd.writes[n].rate:
            ratio = nexus.writes[n].rate / etcd.writes[n].rate
            print(f"  writes/s @{n}: {ratio:.2f}x etcd (goal >= 1.5x)")
    if best_pso:
        best = max(x.rate for x in nexus.writes.values())
        print(f"  best writes/s: {best / best_pso:.2f}x PySyncObj's best, which does not fsync "
              "(goal >= 2x)")
    if nexus.reads and etcd and etcd.reads and etcd.reads.rate:
        ratio = nexus.reads.rate / etcd.reads.rate
        print(f"  linearizable reads @{READ_CONCURRENCY}: {ratio:.2f}x etcd (goal >= 3x)")
    if nexus.failover:
        print(f"  failover median: {median(nexus.failover) * 1000:.0f} ms (goal <= 300 ms)")
    print(f"  load average now: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    """Parse arguments and run the selected measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["compare", "restart", "rss"], default="compare")
    parser.add_argument("--systems", default="nexus,pysyncobj,etcd")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load point")
    parser.add_argument("--failover-runs", type=int, default=3)
    parser.add_argument("--entries", type=int, default=1_000_000, help="for restart/rss")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.failover_runs < 0 or args.entries <= 0:
        parser.error("--duration and --entries must be positive, --failover-runs >= 0")
    # SIGTERM unwinds like Ctrl-C, so every cluster's finally: stop() runs.
    signal.signal(signal.SIGTERM, _terminate)
    if args.only in ("restart", "rss"):
        from _nexus import run_big

        return run_big(args.only, args.entries)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    started = time.monotonic()
    results = [_run_system(factory, args) for _, factory in _factories(names)]
    report(results)
    command = " ".join(["python bench/cluster.py", *argv])
    print(f"\n(total {time.monotonic() - started:.0f} s; command: {command})")
    return 0 if all(not r.error for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
