"""Shared harness for bench/cluster.py: processes, ports, load loops, tables.

Every system under test is driven through the same :class:`KVAdapter`
shape (``put``/``get`` coroutines) by the same load loop: N concurrent
asyncio workers, each doing sequential operations for a fixed duration. A
:class:`ClusterUnderTest` starts/stops/kills the system's three processes so
the failover measurement is the same for all of them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

VALUE_SIZE = 256


class KVAdapter(Protocol):
    """What the load loop needs from a client of a system under test."""

    async def put(self, key: bytes, value: bytes) -> None:
        """A durable, replicated write; returns once committed."""

    async def get(self, key: bytes) -> bytes | None:
        """A linearizable read (or the closest the system offers)."""

    async def close(self) -> None:
        """Release connections."""


class ClusterUnderTest(Protocol):
    """Three server processes of one system on loopback."""

    name: str
    note: str
    #: Extra client counts tried after the common ones, to find the system's best.
    extra_concurrency: tuple[int, ...]

    def start(self) -> None:
        """Start all members and return once a leader serves writes (raises on failure)."""

    def stop(self) -> None:
        """Stop every process this cluster started and remove its data."""

    async def connect(self) -> KVAdapter:
        """A client adapter talking to the cluster."""

    async def leader(self) -> int:
        """Index (0..2) of the current leader."""

    def kill(self, member: int) -> None:
        """SIGKILL one member."""

    def restart(self, member: int) -> None:
        """Start a killed member again on the same address and data."""

    def pids(self) -> list[int]:
        """The live member process ids (for RSS)."""


def free_ports(n: int) -> list[int]:
    """Ask the kernel for ``n`` distinct free loopback ports."""
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


def wait_port(port: int, deadline: float) -> None:
    """Poll until something accepts TCP connections on 127.0.0.1:port."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@dataclass
class Proc:
    """One child process with its log file; killed for sure by :meth:`stop`."""

    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the process in its own session (so a stray Ctrl-C does not hit it)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        p = self.popen
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 15) -> str:
        """The end of the process log, for error messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LoadResult:
    """Counts and latencies of one load run."""

    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # this (driver) process's CPU use over the run, 1.0 = one core

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds (0 when nothing succeeded)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        i = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[i] * 1000


async def run_load(
    op: Callable[[int, int], Awaitable[object]],
    concurrency: int,
    duration: float,
    *,
    warmup: float = 0.5,
    op_timeout: float = 10.0,
) -> LoadResult:
    """Run ``op(worker, i)`` sequentially in each of ``concurrency`` workers.

    Operations completing in the first ``warmup`` seconds are not counted
    (connections, leader caches); after the window no new operation starts.
    An operation that raises or takes longer than ``op_timeout`` counts as an
    error; the worker goes on (a lost answer must not hang the benchmark).
    """
    result = LoadResult()
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    start = loop.time()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(w: int) -> None:
        i = 0
        while True:
            t0 = loop.time()
            if t0 >= stop_at:
                return
            try:
                await asyncio.wait_for(op(w, i), op_timeout)
            except Exception:
                if measure_from <= loop.time() <= stop_at:
                    result.errors += 1
                await asyncio.sleep(0.01)
            else:
                # Completions inside the window count, whenever they started:
                # with thousands in flight an operation can outlast the warmup.
                t1 = loop.time()
                if measure_from <= t1 <= stop_at:
                    result.ops += 1
                    result.latencies.append(t1 - t0)
            i += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = duration
    result.client_cpu = (time.process_time() - cpu0) / max(1e-9, loop.time() - start)
    return result


def value_for(worker: int, i: int) -> bytes:
    """A 256-byte value unique to (worker, i)."""
    head = f"w{worker}-{i}-".encode()
    return head + b"x" * (VALUE_SIZE - len(head))


def key_for(worker: int, i: int, keyspace: int = 10_000) -> bytes:
    """Spread writes over a fixed key space so the stores do not only grow."""
    return f"bench/{(worker * 7919 + i) % keyspace:06d}".encode()


async def measure_failover(
    cluster: ClusterUnderTest, runs: int, *, settle: float = 1.0
) -> list[float]:
    """Kill -9 the leader while a writer runs; time until a write issued after the kill commits.

    A writer keeps issuing writes with a short per-attempt deadline; the
    failover time is from the SIGKILL to the completion of the first write
    *invoked after* the kill. The member is restarted and given time to catch
    up before the next run.
    """
    times: list[float] = []
    for run in range(runs):
        client = await cluster.connect()
        try:
            # Make sure writes flow before the kill.
            await asyncio.wait_for(client.put(b"failover/warm", value_for(0, run)), 10)
            victim = await cluster.leader()
            killed_at = time.monotonic()
            cluster.kill(victim)
            i = 0
            while True:
                i += 1
                if time.monotonic() - killed_at > 30:
                    raise TimeoutError(f"{cluster.name}: no write committed 30 s after the kill")
                try:
                    await asyncio.wait_for(client.put(b"failover/k", value_for(run, i)), 2.0)
                except Exception:
                    await asyncio.sleep(0.005)
                    continue
                times.append(time.monotonic() - killed_at)
                break
        finally:
            await client.close()
        cluster.restart(victim)
        await asyncio.sleep(settle)
    return times


def rss_mb(pids: Sequence[int]) -> list[float]:
    """Resident set size of each pid in MiB (from /proc, no psutil needed)."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        out.append(int(line.split()[1]) / 1024)
                        break
        except OSError:
            out.append(float("nan"))
    return out


def median(values: Sequence[float]) -> float:
    """Median, or NaN for an empty list."""
    return statistics.median(values) if values else float("nan")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> None:
    """Print an aligned text table (markdown-compatible)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def cpu_count_note() -> str:
    """A line describing the machine, printed with the results."""
    return f"{os.cpu_count()} CPUs, loopback, 3 members, {VALUE_SIZE}-byte values"
