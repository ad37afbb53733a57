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

from collections.abc import Iterable
from pathlib import Path

from nexus_raft.consensus.node.config import derive_cluster_id
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.kv.client.types import NodeInfo
from tests.integration.harness import Member, wait_until

from .inproc import free_ports

WITNESS = 3


class Proc(Member):
    """One member process (``module`` = the CLI to run) with its fixed arguments."""

    def __init__(self, node_id: int, address: str, data_dir: Path, log_path: Path,
                 module: str, args: list[str]) -> None:
        super().__init__(node_id, address, data_dir, log_path, module)
        self.args = args

    def start(self, args: list[str] | None = None) -> None:
        super().start(self.args if args is None else args)

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
        self.cluster_id = derive_cluster_id(self.addresses, {WITNESS})
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
