"""Real ``nexus-node`` processes on 127.0.0.1 for the integration tests.

:class:`ProcessCluster` allocates free ports (bind port 0), starts one
``python -m nexus_raft.cli.node`` process per member with its data under a
temporary directory, and offers kill -9 / SIGSTOP / SIGCONT / restart. Every
wait polls the members' Status RPC against a deadline; nothing sleeps for a
fixed time. :meth:`ProcessCluster.close` kills whatever is still running and
is called from fixtures' ``finally`` blocks. Each member's stderr goes to
``<dir>/nodeN.log``; :meth:`ProcessCluster.logs` returns the tails for
failure messages.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.sync import SyncClient, SyncWatch
from nexus_raft.kv.client.types import NodeInfo, WatchEvent

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(
    what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.05
) -> T:
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


def next_event(stream: SyncWatch, timeout: float = 10.0) -> WatchEvent:
    """The next event of a blocking watch, or AssertionError (and the watch closed)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, stream)
        try:
            return pending.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            stream.close()
            raise AssertionError(f"no watch event within {timeout:.1f}s") from None


class Member:
    """One ``nexus-node`` process (it may be stopped and started again)."""

    def __init__(self, node_id: int, address: str, data_dir: Path, log_path: Path,
                 module: str = "nexus_raft.cli.node", prefix: Iterable[str] = ()) -> None:
        self.id = node_id
        self.address = address
        self.data_dir = data_dir
        self.log_path = log_path
        self.module = module
        # Run the program under this command (e.g. ``ip netns exec NS``).
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.metrics_address: str | None = None
        # The peer port (``--peer-listen``) when it is not ``address``.
        self.peer_address: str | None = None

    @property
    def peer(self) -> str:
        """Where peers reach this member (``--peers`` names it)."""
        return self.peer_address or self.address

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, args: list[str]) -> None:
        assert not self.running, f"member {self.id} is already running"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", self.module, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO_ROOT,
            )
        self.paused = False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (and SIGCONT first if paused, so the kill is not delayed)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(timeout=10)
        self.paused = False

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit status."""
        assert self.proc is not None
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessCluster:
    """``size`` members (ids 1..size) started with the same ``--peers``.

    ``peer_ports``: each member serves peers on a port of its own
    (``--peer-listen``), so ``--peers`` names peer addresses while
    ``Member.address`` (and ``endpoints()``) stay the client addresses.
    """

    def __init__(
        self,
        base: Path,
        size: int = 3,
        *,
        witnesses: Iterable[int] = (),
        extra_args: Iterable[str] = (),
        spare: int = 0,
        metrics: bool = False,
        peer_ports: bool = False,
    ) -> None:
        total = size + spare
        ports = free_ports(total * (1 + int(metrics) + int(peer_ports)))
        metrics_ports = ports[total : 2 * total] if metrics else []
        peer_port_list = ports[-total:] if peer_ports else []
        ports = ports[:total]
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.witnesses = sorted(witnesses)
        self.extra_args = list(extra_args)
        self.members: dict[int, Member] = {}
        for i, port in enumerate(ports, start=1):
            self.members[i] = Member(
                i, f"127.0.0.1:{port}", base / f"node{i}", base / f"node{i}.log"
            )
            if metrics:
                self.members[i].metrics_address = f"127.0.0.1:{metrics_ports[i - 1]}"
            if peer_ports:
                self.members[i].peer_address = f"127.0.0.1:{peer_port_list[i - 1]}"
        self.initial = list(range(1, size + 1))
        self.peers_arg = ",".join(f"{i}={self.members[i].peer}" for i in self.initial)
        self._clients: list[SyncClient] = []

    # --- lifecycle ------------------------------------------------------------------

    def args_for(self, node_id: int, *, join: bool = False, join_as: str = "voter") -> list[str]:
        m = self.members[node_id]
        common = ["--id", str(node_id), "--listen", m.address, "--data-dir", str(m.data_dir),
                  "--log-level", "info", *self.extra_args]  # fmt: skip
        if join:
            # Any member will do: the new member learns the rest from the cluster.
            args = [*common, "--join", ",".join(self.endpoints()), "--join-as", join_as]
        else:
            args = [*common, "--peers", self.peers_arg]
            for w in self.witnesses:
                args += ["--witness", str(w)]
        if m.metrics_address is not None:
            args += ["--metrics-listen", m.metrics_address]
        if m.peer_address is not None:
            args += ["--peer-listen", m.peer_address]
        return args

    @property
    def cluster_id(self) -> str:
        from nexus_raft.consensus.node.config import derive_cluster_id

        return derive_cluster_id({i: self.members[i].peer for i in self.initial}, self.witnesses)

    def start(self, ids: Iterable[int] | None = None) -> None:
        for node_id in self.initial if ids is None else ids:
            self.members[node_id].start(self.args_for(node_id))

    def start_joining(self, node_id: int, join_as: str = "voter") -> None:
        self.members[node_id].start(self.args_for(node_id, join=True, join_as=join_as))

    def close(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:
                pass
        for m in self.members.values():
            m.kill()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- clients and status --------------------------------------------------------------

    def endpoints(self, ids: Iterable[int] | None = None) -> list[str]:
        chosen = self.initial if ids is None else ids
        return [self.members[i].address for i in chosen]

    def client(self, ids: Iterable[int] | None = None, **options: object) -> SyncClient:
        options.setdefault("timeout", 10.0)
        client = SyncClient(self.endpoints(ids), **options)  # type: ignore[arg-type]
        self._clients.append(client)
        return client

    def status_of(self, node_id: int, timeout: float = 0.5) -> NodeInfo:
        """One member's own view (raises NexusRaftError if it does not answer in time)."""
        client = self._status_client()
        return client.status(endpoint=self.members[node_id].address, timeout=timeout)

    def _status_client(self) -> SyncClient:
        if not hasattr(self, "_probe"):
            self._probe = SyncClient(self.endpoints(), timeout=2.0, attempt_timeout=0.5)
            self._clients.append(self._probe)
        return self._probe

    def wait_for_leader(
        self, timeout: float = 30.0, among: Iterable[int] | None = None, not_id: int | None = None
    ) -> int:
        """Id of a leader that a majority of the running ``among`` members agree on."""
        candidates = [i for i in (among or self.members) if self.members[i].running]

        def check() -> int | None:
            votes: dict[int, int] = {}
            for i in candidates:
                if self.members[i].paused:
                    continue
                try:
                    info = self.status_of(i)
                except NexusRaftError:
                    continue
                if info.leader_id and info.leader_id != not_id:
                    votes[info.leader_id] = votes.get(info.leader_id, 0) + 1
            for leader, count in votes.items():
                if (
                    count * 2 > len(candidates)
                    and self.members[leader].running
                    and self.status_of(leader).role == "leader"
                ):
                    return leader
            return None

        try:
            return wait_until("a leader", check, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def wait_applied(self, node_id: int, index: int, timeout: float = 15.0) -> NodeInfo:
        """Wait until ``node_id`` has applied at least ``index``."""
        return wait_until(
            f"member {node_id} to apply index {index}",
            lambda: info if (info := self.status_of(node_id)).applied >= index else None,
            timeout,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- member {m.id} ({m.address}) ---\n{m.log_tail()}" for m in self.members.values()
        )
