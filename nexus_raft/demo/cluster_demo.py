"""The cluster demo behind ``make demo``: a real cluster on loopback, broken and healed.

It starts three full ``nexus-node`` members and one witness (a vote-only
member started with ``--witness``) as separate processes on free 127.0.0.1
ports with their data under a temporary directory, then:

1. waits for an election and shows who leads;
2. writes a batch of keys from concurrent clients and reads some back;
3. opens a watch and shows the changes it receives;
4. kills the leader with SIGKILL and measures how long until a write commits again;
5. writes while the old leader is down, restarts it and measures its catch-up;
6. prints a summary table and stops every process (also on error or Ctrl-C).

The output is meant for people; run it with ``python -m nexus_raft.demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.types import NodeInfo

__all__ = ["main", "run_cluster_demo"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _say(text: str = "") -> None:
    # The demo's output is its user interface, not logging.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class _Member:
    id: int
    address: str
    args: list[str]
    log: Path
    witness: bool = False
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nexus_raft.cli.node", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class _Results:
    election_ms: float = 0.0
    writes: int = 0
    write_seconds: float = 0.0
    failover_ms: float = 0.0
    catch_up_ms: float = 0.0
    old_leader: int = 0
    new_leader: int = 0
    notes: list[str] = field(default_factory=list)


class _Demo:
    def __init__(self, workdir: Path, *, witness: bool, keys: int) -> None:
        full = [1, 2, 3]
        ids = [*full, 4] if witness else full
        ports = _free_ports(2 * len(ids))
        addresses = {i: f"127.0.0.1:{p}" for i, p in zip(ids, ports, strict=False)}
        self.metrics = {i: f"127.0.0.1:{p}" for i, p in zip(ids, ports[len(ids) :], strict=True)}
        peers = ",".join(f"{i}={a}" for i, a in addresses.items())
        self.members: dict[int, _Member] = {}
        for i in ids:
            args = [
                "--id", str(i), "--listen", addresses[i], "--peers", peers,
                "--data-dir", str(workdir / f"node{i}"), "--log-level", "info",
            ]
            if witness:
                args += ["--witness", "4"]
            if i != 4:  # full members serve Prometheus metrics and health probes
                args += ["--metrics-listen", self.metrics[i]]
            self.members[i] = _Member(
                i, addresses[i], args, workdir / f"node{i}.log", witness=(i == 4)
            )
        self.full = full
        self.keys = keys
        self.results = _Results()
        self.workdir = workdir

    def endpoints(self, exclude: int | None = None) -> list[str]:
        return [m.address for i, m in self.members.items() if i != exclude]

    def stop_all(self) -> None:
        for m in self.members.values():
            m.stop()

    def kill_all(self) -> None:
        for m in self.members.values():
            m.kill()

    async def status_of(self, client: Client, node_id: int) -> NodeInfo | None:
        try:
            return await client.status(endpoint=self.members[node_id].address, timeout=0.5)
        except NexusRaftError:
            return None

    async def wait_leader(self, client: Client, timeout: float, not_id: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.full:
                info = await self.status_of(client, i)
                if info is not None and info.is_leader and i != not_id:
                    return i
            await asyncio.sleep(0.02)
        raise NexusRaftError(f"no leader elected within {timeout:.0f}s")

    async def run(self) -> _Results:
        r = self.results
        n_full, n_witness = len(self.full), len(self.members) - len(self.full)
        _say(f"[1/6] starting {n_full} nexus-node members" + (" + 1 witness" if n_witness else ""))
        _say(f"      data and logs under {self.workdir}")
        for m in self.members.values():
            kind = "witness" if m.witness else "member "
            _say(f"      {kind} {m.id}  {m.address}  (log: {m.log.name})")
            m.start()
        async with Client(self.endpoints(), timeout=15) as client:
            t0 = time.monotonic()
            leader = await self.wait_leader(client, 30)
            r.election_ms = (time.monotonic() - t0) * 1000
            _say(f"      member {leader} leads (up and elected in {r.election_ms:.0f} ms)")

            _say(f"[2/6] writing {self.keys} keys from 32 concurrent callers")
            t0 = time.monotonic()
            sem = asyncio.Semaphore(32)

            async def put(i: int) -> None:
                async with sem:
                    await client.put(f"demo/users/user{i:04d}", f"profile {i}".encode())

            await asyncio.gather(*(put(i) for i in range(self.keys)))
            r.write_seconds = time.monotonic() - t0
            r.writes = self.keys
            rate = self.keys / r.write_seconds
            _say(f"      {self.keys} writes committed in {r.write_seconds:.2f}s ({rate:.0f}/s)")
            value = await client.get("demo/users/user0042")
            keys = await client.list_keys("demo/users/")
            _say(f"      get demo/users/user0042 -> {value!r}; {len(keys)} keys under demo/users/")

            await self.show_watch(client)
            await self.fail_over(client, leader)
            await self.catch_up(client)
            await self.summary(client)
        return r

    async def show_watch(self, client: Client) -> None:
        _say("[3/6] watching demo/config/ while another client changes it")
        # Watch from the next revision rather than "live only": the changes
        # below cannot slip in before the stream is established.
        start = (await client.status()).revision + 1
        async with client.watch("demo/config/", start_revision=start) as stream:
            received: list[str] = []

            async def consume() -> None:
                async for event in stream:
                    what = "DELETE" if event.value is None else f"= {event.value.decode()}"
                    received.append(f"rev {event.revision}: {event.key.decode()} {what}")
                    if len(received) == 3:
                        return

            task = asyncio.create_task(consume())
            await client.put("demo/config/mode", b"fast")
            await client.put("demo/config/mode", b"safe")
            await client.delete("demo/config/mode")
            await asyncio.wait_for(task, 10)
        for line in received:
            _say(f"      watch: {line}")

    async def fail_over(self, client: Client, leader: int) -> None:
        r = self.results
        r.old_leader = leader
        _say(f"[4/6] kill -9 the leader (member {leader}) and keep writing")
        self.members[leader].kill()
        t0 = time.monotonic()
        await client.put("demo/failover/first-write", b"after the leader died", timeout=20)
        r.failover_ms = (time.monotonic() - t0) * 1000
        r.new_leader = await self.wait_leader(client, 10, not_id=leader)
        _say(
            f"      first write committed {r.failover_ms:.0f} ms after the kill; "
            f"member {r.new_leader} leads now"
        )
        await asyncio.gather(*(client.put(f"demo/failover/k{i:03d}", b"x") for i in range(200)))
        _say(f"      200 more writes committed while member {leader} is down")

    async def catch_up(self, client: Client) -> None:
        r = self.results
        old = r.old_leader
        _say(f"[5/6] restart member {old} and wait for it to catch up")
        leader_view = await client.status(endpoint=self.members[r.new_leader].address)
        t0 = time.monotonic()
        self.members[old].start()
        deadline = t0 + 30
        while True:
            info = await self.status_of(client, old)
            if info is not None and info.applied >= leader_view.commit:
                break
            if time.monotonic() > deadline:
                raise NexusRaftError(f"member {old} did not catch up within 30s")
            await asyncio.sleep(0.02)
        r.catch_up_ms = (time.monotonic() - t0) * 1000
        value = await client.get("demo/failover/first-write", serializable=True)
        local = Client([self.members[old].address], timeout=5)
        async with local:
            mine = await local.get("demo/failover/first-write", serializable=True)
        if value != mine:
            raise NexusRaftError(f"member {old} has {mine!r}, the cluster {value!r}")
        _say(
            f"      member {old} restarted and applied up to index {leader_view.commit} "
            f"in {r.catch_up_ms:.0f} ms (process start included)\n"
            f"      its copy of demo/failover/first-write: {mine!r}"
        )

    async def summary(self, client: Client) -> None:
        r = self.results
        _say("[6/6] summary")
        rows = [("member", "kind", "role", "term", "applied", "keys")]
        for i, m in self.members.items():
            info = await self.status_of(client, i)
            if info is None:
                rows.append((str(i), "?", "unreachable", "-", "-", "-"))
                continue
            keys = "-"
            if not m.witness:
                async with Client([m.address], timeout=5) as local:
                    keys = str(len(await local.list_keys("demo/", serializable=True)))
            kind = "witness" if m.witness else "full"
            role = "leader" if info.is_leader else ("witness" if m.witness else info.role)
            rows.append((str(i), kind, role, str(info.term), str(info.applied), keys))
        for line in _table(rows):
            _say("      " + line)
        _say()
        metrics = [
            ("metric", "value"),
            ("start-up + first election", f"{r.election_ms:.0f} ms"),
            (f"{r.writes} concurrent writes", f"{r.writes / r.write_seconds:.0f} writes/s"),
            ("kill -9 leader -> next committed write", f"{r.failover_ms:.0f} ms"),
            ("restarted member caught up", f"{r.catch_up_ms:.0f} ms"),
        ]
        for line in _table(metrics):
            _say("      " + line)
        await self.show_operations(client)

    async def show_operations(self, client: Client) -> None:
        """What an operator sees: ``nexusctl endpoint status`` and a metrics excerpt."""
        eps = ",".join(self.endpoints())
        _say()
        _say(f"      $ nexusctl --endpoints {eps} endpoint status")
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(
            None,
            lambda: subprocess.run(
                [sys.executable, "-m", "nexus_raft.cli.ctl", "--endpoints", eps,
                 "endpoint", "status"],
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            ),
        )
        for line in (out.stdout + out.stderr).splitlines():
            _say("      " + line)
        info = await client.status()
        leader = info.leader_id if info.leader_id in self.metrics else self.full[0]
        address = self.metrics[leader]
        _say(f"      $ curl -s http://{address}/metrics | grep ...   (member {leader})")
        text = await loop.run_in_executor(None, _fetch, f"http://{address}/metrics")
        wanted = ("nexus_server_has_leader ", "nexus_server_is_leader ",
                  "nexus_server_leader_changes_seen_total ",
                  "nexus_server_proposals_committed_total ",
                  "nexus_server_proposals_applied_total ", "nexus_server_proposals_failed_total ",
                  "nexus_disk_wal_fsync_duration_seconds_count ",
                  "nexus_disk_wal_fsync_duration_seconds_sum ",
                  "nexus_network_peer_round_trip_time_seconds_count",
                  "nexus_disk_db_total_size_in_bytes ", "nexus_kv_revision ")
        for line in text.splitlines():
            if line.startswith(wanted):
                _say("      " + line)


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def _table(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for n, row in enumerate(rows):
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        if n == 0:
            yield "  ".join("-" * w for w in widths)


def run_cluster_demo(*, witness: bool = True, keys: int = 500, keep: bool = False) -> int:
    """Run the demo; returns the exit status (0 on success). ``keep`` leaves the data dir."""
    workdir = Path(tempfile.mkdtemp(prefix="nexus-demo-"))
    demo = _Demo(workdir, witness=witness, keys=keys)
    started = time.monotonic()
    try:
        asyncio.run(demo.run())
    except (NexusRaftError, OSError) as exc:
        _say(f"demo failed: {type(exc).__name__}: {exc}")
        for m in demo.members.values():
            with contextlib.suppress(OSError):
                tail = m.log.read_text(errors="replace").splitlines()[-5:]
                _say(f"--- member {m.id} log tail ---")
                for line in tail:
                    _say("  " + line)
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        demo.stop_all()
        demo.kill_all()
        if keep:
            _say(f"data and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    _say(f"done in {time.monotonic() - started:.1f}s; every process stopped, temp data removed")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nexus_raft.demo`` (cluster part): see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m nexus_raft.demo",
        description="Run a real cluster on loopback, kill its leader, watch it recover.",
        epilog="python -m nexus_raft.demo --storage runs the embedded-store demo instead.",
    )
    parser.add_argument("--no-witness", action="store_true", help="run 3 members, no witness")
    parser.add_argument("--keys", type=int, default=500, help="keys to write (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    ns = parser.parse_args(argv)
    if ns.keys < 1:
        parser.error("--keys must be positive")
    return run_cluster_demo(witness=not ns.no_witness, keys=ns.keys, keep=ns.keep)


if __name__ == "__main__":
    sys.exit(main())
