"""What a witness costs and what it saves: 2 full + 1 witness versus 3 full members.

Both clusters run in the same invocation on loopback, as real processes
(``python -m nexus_raft.cli.node`` for full members, ``python -m
nexus_raft.cli.witness`` for the witness), with fsync on and default timing.
Member 1 is made the leader in both (leadership transfer if needed), so client
traffic never touches member 3 and everything member 3 receives is peer
traffic. For each value size (256 B and 64 KiB) and each client concurrency
the same load runs for a fixed time: N asyncio workers sharing one ``Client``
(which coalesces concurrent writes into Batch RPCs), each putting fresh keys.

Measured for member 3 (the witness, or the third full member in the
baseline), over each load phase:

- network: TCP payload bytes member 3's process received, summed over its
  sockets from the kernel's per-socket ``bytes_received`` counters
  (``ss -tinp``), sampled before and after the phase. This is every byte of
  gRPC/HTTP2 framing and Raft messages, heartbeats included, and nothing
  else; it needs no proxy, so it costs the cluster nothing. Sockets that
  close during a phase would be missed; the count of such sockets is printed
  (0 in a healthy run) so an undercount cannot hide;
- disk: growth of member 3's data directory (LevelDB tables, write-ahead log
  and manifest), also for member 2 (a full member) for contrast;
- memory: member 3's resident set size at the end of the phase.

Per committed write = divided by the acknowledged writes of the phase.

Run: ``.venv/bin/python bench/witness.py`` (``--seconds``, ``--clients``,
``--sizes`` to change the load; ``--quick`` for a short smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus_raft.errors import NexusRaftError  # noqa: E402
from nexus_raft.kv.client.client import Client  # noqa: E402
from nexus_raft.witness.footprint import disk_bytes, rss_bytes  # noqa: E402

_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
FULL = "3 full"
WITNESSED = "2 full + 1 witness"
_PID_RE = re.compile(r"pid=(\d+),")
_RECV_RE = re.compile(r"bytes_received:(\d+)")


# --- member 3's received bytes, from the kernel ----------------------------------------


def tcp_received(pid: int) -> dict[tuple[str, str], int]:
    """``(local, peer) -> bytes_received`` for every established TCP socket of ``pid``."""
    out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                         text=True, check=True).stdout
    counts: dict[tuple[str, str], int] = {}
    lines = out.splitlines()
    for head, info in zip(lines[::2], lines[1::2], strict=False):
        pids = {int(p) for p in _PID_RE.findall(head)}
        if pid not in pids:
            continue
        fields = head.split()
        got = _RECV_RE.search(info)
        counts[(fields[2], fields[3])] = int(got.group(1)) if got else 0
    return counts


def received_delta(before: dict[tuple[str, str], int],
                   after: dict[tuple[str, str], int]) -> tuple[int, int]:
    """(bytes received between the samples, sockets that closed meanwhile)."""
    total = 0
    for sock, n in after.items():
        total += n - before.get(sock, 0)
    vanished = sum(1 for sock in before if sock not in after)
    return total, vanished


# --- clusters ----------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """Members 1..3 as processes; member 3 is a witness when ``witness`` is True."""

    def __init__(self, base: Path, *, witness: bool) -> None:
        self.base = base
        self.witness = witness
        ports = free_ports(3)
        self.addresses = {i: f"127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def name(self) -> str:
        return WITNESSED if self.witness else FULL

    def data_dir(self, i: int) -> Path:
        return self.base / f"member{i}"

    def start(self) -> None:
        peers = ",".join(f"{i}={a}" for i, a in self.addresses.items())
        for i, address in self.addresses.items():
            args = ["--id", str(i), "--listen", address, "--peers", peers,
                    "--data-dir", str(self.data_dir(i)), "--log-level", "warning"]
            if self.witness and i == 3:
                module, args = "nexus_raft.cli.witness", [*args, "--status-interval", "0"]
            else:
                module = "nexus_raft.cli.node"
                if self.witness:
                    args += ["--witness", "3"]
            with (self.base / f"member{i}.log").open("ab") as log:
                self.procs[i] = subprocess.Popen(
                    [sys.executable, "-m", module, *args], stdout=log, stderr=log,
                    stdin=subprocess.DEVNULL, env=_ENV, cwd=ROOT,
                )  # fmt: skip

    def restart(self, i: int) -> None:
        """SIGTERM member ``i``, wait for its exit, start it again on the same data."""
        proc = self.procs[i]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        with (self.base / f"member{i}.log").open("ab") as log:
            self.procs[i] = subprocess.Popen(proc.args, stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, env=_ENV, cwd=ROOT)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    async def lead_with_member_1(self, client: Client, timeout: float = 30.0) -> None:
        """Wait for a leader; make it member 1 so client traffic never reaches member 3."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = await client.status(endpoint=self.addresses[1], timeout=1.0)
                if info.leader_id == 1 and info.is_leader:
                    return
                if info.leader_id is not None:
                    await client.transfer_leader(1, timeout=5.0)
            except NexusRaftError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: member 1 did not become the leader")
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def running(base: Path, *, witness: bool) -> Iterator[Cluster]:
    cluster = Cluster(base, witness=witness)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# --- load ----------------------------------------------------------------------------------


@dataclass
class Phase:
    """One load phase (or several merged): writes, time, latencies, member 3's bytes."""

    cluster: str
    size: int
    clients: int
    writes: int
    seconds: float
    latencies: list[float]
    net_bytes: int
    vanished: int
    disk3_bytes: int
    disk2_bytes: int
    rss3: int | None

    @property
    def rate(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    def per_write(self, n: int) -> float:
        return n / self.writes if self.writes else float("nan")

    def merge(self, other: Phase) -> Phase:
        """Both rounds as one: summed writes, time and bytes; pooled latencies; last RSS."""
        return Phase(
            self.cluster, self.size, self.clients, self.writes + other.writes,
            self.seconds + other.seconds, self.latencies + other.latencies,
            self.net_bytes + other.net_bytes, self.vanished + other.vanished,
            self.disk3_bytes + other.disk3_bytes, self.disk2_bytes + other.disk2_bytes,
            other.rss3,
        )


async def load(client: Client, *, clients: int, size: int, seconds: float,
               tag: str) -> tuple[int, float, list[float]]:
    """``clients`` workers put fresh keys for ``seconds``; (writes, elapsed, latencies)."""
    value = os.urandom(size)  # incompressible, so LevelDB's compression does not flatter
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        n = 0
        while time.perf_counter() < stop_at:
            key = f"{tag}/{w}/{n}"
            t0 = time.perf_counter()
            await client.put(key, value)
            latencies.append(time.perf_counter() - t0)
            n += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return len(latencies), time.perf_counter() - start, latencies


async def phase(cluster: Cluster, client: Client, *, size: int, clients: int,
                seconds: float, rep: int) -> Phase:
    """One load phase on ``cluster`` with member 3's bytes sampled around it."""
    pid3 = cluster.procs[3].pid
    net0 = tcp_received(pid3)
    d3, d2 = disk_bytes(cluster.data_dir(3)), disk_bytes(cluster.data_dir(2))
    writes, elapsed, lat = await load(client, clients=clients, size=size, seconds=seconds,
                                      tag=f"s{size}c{clients}r{rep}")
    net, vanished = received_delta(net0, tcp_received(pid3))
    return Phase(
        cluster=cluster.name, size=size, clients=clients, writes=writes, seconds=elapsed,
        latencies=lat, net_bytes=net, vanished=vanished,
        disk3_bytes=disk_bytes(cluster.data_dir(3)) - d3,
        disk2_bytes=disk_bytes(cluster.data_dir(2)) - d2, rss3=rss_bytes(pid3),
    )  # fmt: skip


async def idle_rate(cluster: Cluster, seconds: float) -> float:
    """Bytes per second member 3 receives with no writes (heartbeats and keepalives)."""
    pid3 = cluster.procs[3].pid
    before = tcp_received(pid3)
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    got, _ = received_delta(before, tcp_received(pid3))
    return got / (time.perf_counter() - t0)


async def run_all(full: Cluster, wit: Cluster, sizes: list[int], concurrency: list[int],
                  seconds: float, reps: int) -> tuple[list[Phase], dict[str, float]]:
    """Alternate the two clusters phase by phase, so background load hits both alike."""
    phases: list[Phase] = []
    idle: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, Client] = {}
        for cluster in (full, wit):
            client = Client([cluster.addresses[1], cluster.addresses[2]], timeout=30.0)
            clients[cluster.name] = await stack.enter_async_context(client)
            await cluster.lead_with_member_1(client)
            await load(client, clients=4, size=256, seconds=0.5, tag="warm")
        for cluster in (full, wit):
            idle[cluster.name] = await idle_rate(cluster, min(2.0, seconds))
        for size in sizes:
            for n in concurrency:
                dur = seconds if size <= 4096 else max(0.5, seconds * 0.6)
                for rep in range(reps):
                    for cluster in (full, wit):
                        p = await phase(cluster, clients[cluster.name], size=size, clients=n,
                                        seconds=dur, rep=rep)
                        phases.append(p)
                        print(f"  {cluster.name:>18}: {_size(size):>6} x {n:>3} clients "
                              f"(round {rep + 1}): {p.rate:8.0f} writes/s", flush=True)
    return phases, idle


async def restarted_footprint(cluster: Cluster) -> tuple[int, int] | None:
    """Restart member 3 so LevelDB folds its write-ahead log into tables: (disk bytes, entries).

    None (and the member's log tail on stderr) if it does not serve again within a minute.
    """
    cluster.restart(3)
    async with Client([cluster.addresses[3]], timeout=10.0) as client:
        deadline = time.monotonic() + 60
        while True:
            try:
                info = await client.status(endpoint=cluster.addresses[3], timeout=1.0)
                if info.leader_id is not None:
                    return disk_bytes(cluster.data_dir(3)), info.last_index
            except NexusRaftError:
                pass
            if time.monotonic() > deadline:
                tail = (cluster.base / "member3.log").read_text(errors="replace")
                print("member 3 did not serve again after its restart; log tail:\n"
                      + "\n".join(tail.splitlines()[-15:]), file=sys.stderr)
                return None
            await asyncio.sleep(0.1)


# --- report --------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 else f"{n} B"


def report(phases: list[Phase], idle: dict[str, float], rest: tuple[int, int] | None) -> int:
    """Print the tables; returns the number of missed goals."""
    merged: dict[tuple[str, int, int], Phase] = {}
    for p in phases:
        key = (p.cluster, p.size, p.clients)
        merged[key] = merged[key].merge(p) if key in merged else p
    print()
    print("Write throughput and p50 latency (same load, both clusters alternating, same run)")
    head = (f"{'value':>7} {'clients':>7} | {'3 full w/s':>10} {'p50 ms':>7} | "
            f"{'2+1 w/s':>9} {'p50 ms':>7} | {'2+1 vs 3':>8}")
    print(head)
    print("-" * len(head))
    missed = 0
    for (name, size, clients), p in merged.items():
        if name != FULL:
            continue
        w = merged.get((WITNESSED, size, clients))
        if w is None:
            continue
        ratio = w.rate / p.rate if p.rate else float("nan")
        print(f"{_size(size):>7} {clients:>7} | {p.rate:>10.0f} {p.p50_ms:>7.2f} | "
              f"{w.rate:>9.0f} {w.p50_ms:>7.2f} | {ratio:>8.0%}")
        if ratio < 0.9:
            missed += 1
    print()
    print("Member 3 per committed write: the witness vs a full third member")
    head = (f"{'value':>7} {'clients':>7} | {'member 3':>8} | {'net recv B/w':>12} "
            f"{'disk B/w':>9} {'RSS MiB':>8} | {'member 2 disk B/w':>17}")
    print(head)
    print("-" * len(head))
    vanished = 0
    for name in (FULL, WITNESSED):
        for (cname, size, clients), p in merged.items():
            if cname != name:
                continue
            kind = "witness" if name == WITNESSED else "full"
            rss = f"{p.rss3 / 2**20:.0f}" if p.rss3 is not None else "?"
            print(f"{_size(size):>7} {clients:>7} | {kind:>8} | "
                  f"{p.per_write(p.net_bytes):>12.1f} {p.per_write(p.disk3_bytes):>9.1f} "
                  f"{rss:>8} | {p.per_write(p.disk2_bytes):>17.1f}")
            vanished += p.vanished
            if kind == "witness" and p.per_write(p.net_bytes) >= 64:
                missed += 1
    print()
    print(f"Idle (no writes) member 3 receives: full {idle.get(FULL, 0):.0f} B/s, "
          f"witness {idle.get(WITNESSED, 0):.0f} B/s (heartbeats, HTTP/2 keepalive).")
    if rest is None:
        print("Witness at rest after a restart: not measured (it did not serve again in time).")
        missed += 1
    else:
        rest_bytes, entries = rest
        print(f"Witness at rest after a restart (LevelDB log folded into tables): {rest_bytes} B "
              f"for {entries} entries = {rest_bytes / max(1, entries):.1f} B/entry.")
    print("Goals: 2+1 throughput within 10% of 3 full; the witness receives (and stores) "
          "< 64 B per committed write with healthy full voters, whatever the value size.")
    print("net recv: kernel bytes_received over all of member 3's TCP sockets (ss -tinp); "
          "disk: data-directory growth incl. LevelDB's write-ahead log; "
          f"sockets closed mid-phase (would undercount): {vanished}.")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load time per phase")
    parser.add_argument("--rounds", type=int, default=2, help="phases per cluster and load")
    parser.add_argument("--clients", default="1,32", help="concurrencies, comma separated")
    parser.add_argument("--sizes", default="256,65536", help="value sizes in bytes")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    if shutil.which("ss") is None:
        print("bench/witness.py needs `ss` (iproute2) to read socket counters", file=sys.stderr)
        return 2
    seconds = 0.5 if args.quick else args.seconds
    rounds = 1 if args.quick else max(1, args.rounds)
    concurrency = [int(c) for c in args.clients.split(",") if c]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"bench/witness.py: {seconds:.1f} s per phase x {rounds} rounds, values {sizes}, "
          f"clients {concurrency}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="nexus-witness-bench-") as tmp:
        (Path(tmp) / "full").mkdir()
        (Path(tmp) / "witness").mkdir()
        with running(Path(tmp) / "full", witness=False) as full, \
                running(Path(tmp) / "witness", witness=True) as wit:
            phases, idle = asyncio.run(run_all(full, wit, sizes, concurrency, seconds, rounds))
            rest = asyncio.run(restarted_footprint(wit))
    missed = report(phases, idle, rest)
    print(f"goals missed: {missed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
