"""Real processes for the witness tests: two ``nexus-node`` members and one ``nexus-witness``.

:class:`TwoPlusOne` allocates loopback ports, starts members 1 and 2 as
``python -m nexus_raft.cli.node ... --witness 3`` and member 3 as
``python -m nexus_raft.cli.witness``, each with its data under the test's
temporary directory, and offers kill -9, SIGSTOP/SIGCONT, SIGTERM and restart.
Waits poll the members' Status RPC against a deadline; :meth:`TwoPlusOne.close`
(called from the fixture's ``finally``) kills whatever still runs. Each member's
stdout and stderr go to ``<base>/memberN.log`` (the witness's status lines
included), shown by :meth:`TwoPlusOne.logs` when a test fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from nexus_raft.consensus.client_types import NodeInfo
from nexus_raft.consensus.config import derive_cluster_id
from nexus_raft.consensus.sync_client import SyncClient
from nexus_raft.errors import NexusRaftError

from .inproc import free_ports

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
WITNESS = 3


def wait_until(what: str, check: Callable[[], T | None], timeout: float,
               interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (NexusRaftError, OSError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


class Proc:
    """One member process; it may be stopped and started again on the same data."""

    def __init__(self, node_id: int, address: str, data_dir: Path, log_path: Path,
                 module: str, args: list[str]) -> None:
        self.id = node_id
        self.address = address
        self.data_dir = data_dir
        self.log_path = log_path
        self.module = module
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, f"member {self.id} is already running"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=REPO_ROOT,
            )  # fmt: skip
        self.paused = False

    def kill(self) -> None:
        """SIGKILL (SIGCONT after it if paused, so the kill is delivered at once)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(timeout=10)
        self.paused = False

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the exit; returns the exit status."""
        assert self.proc is not None
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class TwoPlusOne:
    """Full members 1 and 2, witness 3, all started with the same ``--peers``."""

    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        ports = free_ports(3)
        self.addresses = {i: f"127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
        peers = ",".join(f"{i}={a}" for i, a in self.addresses.items())
        self.cluster_id = derive_cluster_id(self.addresses)
        self.members: dict[int, Proc] = {}
        for i, address in self.addresses.items():
            data = base / f"member{i}"
            common = ["--id", str(i), "--listen", address, "--peers", peers,
                      "--data-dir", str(data), "--log-level", "info"]
            if i == WITNESS:
                module, args = "nexus_raft.cli.witness", [*common, "--status-interval", "1"]
            else:
                module, args = "nexus_raft.cli.node", [*common, "--witness", str(WITNESS)]
            self.members[i] = Proc(i, address, data, base / f"member{i}.log", module, args)
        self._clients: list[SyncClient] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, ids: Iterable[int] = (1, 2, 3)) -> None:
        for i in ids:
            self.members[i].start()

    def close(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:
                pass
        for m in self.members.values():
            m.kill()

    def logs(self, lines: int = 40) -> str:
        parts = []
        for m in self.members.values():
            tail = "\n".join(m.output().splitlines()[-lines:])
            parts.append(f"--- member {m.id} ({m.address}, {m.module}) ---\n{tail}")
        return "\n".join(parts)

    # --- clients and status -------------------------------------------------------------------

    def client(self, ids: Iterable[int] = (1, 2, 3), timeout: float = 15.0) -> SyncClient:
        """A client given the addresses of ``ids`` (it follows the leader from there)."""
        client = SyncClient([self.addresses[i] for i in ids], timeout=timeout)
        self._clients.append(client)
        return client

    def status_of(self, node_id: int, timeout: float = 0.5) -> NodeInfo:
        """``node_id``'s own view (NexusRaftError if it does not answer in time)."""
        if not hasattr(self, "_probe"):
            self._probe = SyncClient(list(self.addresses.values()), timeout=2.0,
                                     attempt_timeout=0.5)
            self._clients.append(self._probe)
        return self._probe.status(endpoint=self.addresses[node_id], timeout=timeout)

    def wait_for_leader(self, among: Iterable[int] = (1, 2, 3), timeout: float = 20.0,
                        full: bool = True) -> int:
        """A leader that every running, unpaused member of ``among`` reports.

        ``full``: only a full member counts (a witness leads only briefly).
        """
        ids = list(among)

        def check() -> int | None:
            seen = set()
            for i in ids:
                m = self.members[i]
                if not m.running or m.paused:
                    continue
                seen.add(self.status_of(i).leader_id)
            if len(seen) != 1:
                return None
            (leader,) = seen
            if leader is None or (full and leader == WITNESS):
                return None
            if self.status_of(leader).role != "leader":
                return None
            return leader

        return wait_until("an agreed leader", check, timeout)
