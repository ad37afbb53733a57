"""The same load through the same etcd v3 API: a 3-member etcd 3.4 and a 3-member nexus_raft.

Usage::

    python bench/etcd_compat.py                    # both systems, 4 s per load point
    python bench/etcd_compat.py --duration 2 --check-perf s

Both clusters run as three processes on 127.0.0.1 and are driven, one after
the other, by bench/cluster.py's load loop through one client: the etcd
client of bench/_etcd.py (``grpc.aio`` unary ``etcdserverpb.KV/Put`` and
linearizable ``KV/Range``, sent to the member believed to lead). nexus_raft
is measured through its etcd front end, not its native API. Measured per
system: writes/s and latency at 1, 16, 64 and 256 concurrent clients,
linearizable reads/s at 64, failover (SIGKILL of the leader until the first
write issued after it commits), then ``etcdctl check perf --load=s``
(etcd's own load generator: pass/fail, writes/s, slowest request).

The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent)]

import _etcd  # noqa: E402
from _cluster_common import cpu_count_note, median, print_table  # noqa: E402
from _nexus import NexusCluster  # noqa: E402
from cluster import CONCURRENCY, READ_CONCURRENCY, SystemResult, _run_system  # noqa: E402

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class NexusThroughEtcdAPI(NexusCluster):
    """A nexus_raft cluster (same processes as bench/cluster.py's) driven through its etcd API."""

    name = "nexus_raft (etcd API)"
    note = "fsync per group commit; etcd front end, one unary call per operation"
    extra_concurrency: tuple[int, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.client_ports = self.ports  # what _etcd.EtcdClient dials

    async def connect(self) -> _etcd.EtcdClient:  # type: ignore[override]
        client = _etcd.EtcdClient(self)  # type: ignore[arg-type]
        try:
            client._target = await self.leader()
        except RuntimeError:
            pass
        return client


class Etcd(_etcd.EtcdCluster):
    """bench/_etcd.py's etcd cluster, at the same load points only."""

    extra_concurrency: tuple[int, ...] = ()


@dataclass
class CheckPerf:
    """What ``etcdctl check perf`` printed: verdict, throughput, slowest request."""

    passed: bool | None = None
    rate: float = float("nan")
    slowest: float = float("nan")
    detail: str = ""


def check_perf(endpoints: list[str], load: str, timeout: float = 300.0) -> CheckPerf:
    """Run ``etcdctl check perf --load=LOAD`` against ``endpoints`` and parse its verdict."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    try:
        out = subprocess.run(
            [ETCDCTL, f"--endpoints={','.join(endpoints)}", "check", "perf", f"--load={load}"],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckPerf(detail=f"etcdctl check perf failed to run: {exc}")
    text = out.stdout + out.stderr
    res = CheckPerf(detail=" | ".join(
        line.strip() for line in text.splitlines()
        if line.startswith(("PASS", "FAIL", "Error", "error", "Slowest", "Stddev"))
    ))
    if m := re.search(r"Throughput (?:is|too low:) ([0-9.]+) writes/s", text):
        res.rate = float(m.group(1))
    if m := re.search(r"Slowest request took (?:too long: )?([0-9.]+)s", text):
        res.slowest = float(m.group(1))
    res.passed = out.returncode == 0 and bool(re.search(r"^PASS$", text, re.M))
    return res


def _run(factory: type, args: argparse.Namespace) -> tuple[SystemResult, CheckPerf]:
    res = _run_system(factory, args)
    perf = CheckPerf(detail="skipped")
    if args.check_perf and not res.error:
        cluster = factory()
        try:
            cluster.start()
            print(f"  {cluster.name}: etcdctl check perf --load={args.check_perf} ...", flush=True)
            endpoints = [f"127.0.0.1:{p}" for p in cluster.client_ports]
            perf = check_perf(endpoints, args.check_perf)
            print(f"  {cluster.name}: {perf.detail}", flush=True)
        finally:
            cluster.stop()
    return res, perf


def _fmt(v: float, spec: str = ",.0f") -> str:
    return "-" if v != v else format(v, spec)


def report(results: list[tuple[SystemResult, CheckPerf]], load: str) -> None:
    headers = ["metric", *(r.name for r, _ in results)]
    rows: list[list[str]] = []
    for n in CONCURRENCY:
        rows.append([f"writes/s, {n} clients"]
                    + [_fmt(r.writes[n].rate) if n in r.writes else "-" for r, _ in results])
    for n in (1, 64, 256):
        rows.append([f"write p50 / p99 ms, {n} clients"] + [
            f"{r.writes[n].percentile(50):.2f} / {r.writes[n].percentile(99):.2f}"
            if n in r.writes else "-" for r, _ in results])
    rows.append([f"linearizable reads/s, {READ_CONCURRENCY} clients"]
                + [_fmt(r.reads.rate) if r.reads else "-" for r, _ in results])
    rows.append(["failover ms (median)"]
                + [_fmt(median(r.failover) * 1000) if r.failover else "-" for r, _ in results])
    rows.append([f"check perf --load={load}"] + [
        "-" if p.passed is None else ("PASS" if p.passed else "FAIL") for _, p in results])
    rows.append(["check perf writes/s"] + [_fmt(p.rate) for _, p in results])
    rows.append(["check perf slowest request s"] + [_fmt(p.slowest, ".3f") for _, p in results])
    print_table(headers, rows, title=f"etcd API, same load ({cpu_count_note()})")
    for r, p in results:
        print(f"  {r.name}: {r.note}" + (f"  [FAILED: {r.error}]" if r.error else ""))
        if p.detail:
            print(f"    check perf: {p.detail}")


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per load point")
    parser.add_argument("--failover-runs", type=int, default=3)
    parser.add_argument("--check-perf", default="s", help="etcdctl check perf load (''=skip)")
    parser.add_argument("--systems", default="etcd,nexus", help="etcd, nexus or both")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.failover_runs < 0:
        parser.error("--duration must be positive, --failover-runs >= 0")
    signal.signal(signal.SIGTERM, _terminate)
    reason = _etcd.ensure_installed()
    if reason is not None:
        print(f"etcd_compat skipped: {reason}")
        return 0
    before = os.getloadavg()
    started = time.monotonic()
    systems = {"etcd": Etcd, "nexus": NexusThroughEtcdAPI}
    chosen = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not chosen or any(s not in systems for s in chosen):
        parser.error(f"--systems: choose from {', '.join(systems)}")
    results = [_run(systems[s], args) for s in chosen]
    after = os.getloadavg()
    report(results, args.check_perf or "-")
    print(f"\nload average (1/5/15 min) before: {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}; "
          f"after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} (a shared machine)")
    command = " ".join(["python bench/etcd_compat.py", *argv])
    print(f"(total {time.monotonic() - started:.0f} s; command: {command})")
    return 0 if all(not r.error for r, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
