"""Real ``nexus-node`` clusters with a peer port apart and (optionally) TLS.

:class:`SecureCluster` extends the integration harness's ProcessCluster:
each member gets a client port (``--listen``, what clients and the harness's
status probes use) and, with ``separate=True``, a peer port
(``--peer-listen``, what ``--peers`` names). With a :class:`MemberPki`,
members get their certificates as files: ``peer_mtls`` puts mutual TLS with
per-member identity on the peer port, ``client_tls`` puts TLS on the client
port (``client_cert_auth``: mutual). :class:`Attacker` sends crafted peer
messages over real gRPC, as anyone on the network could.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from nexus_raft.consensus.node.config import derive_cluster_id
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.transport import NodeAddress, RaftClient, Timeouts, TLSConfig
from tests.integration.harness import ProcessCluster, free_ports, wait_until
from tests.transport.certs import MemberPki


class SecureCluster(ProcessCluster):
    """``size`` members (ids 1..size); see the module docstring."""

    def __init__(
        self,
        base: Path,
        size: int = 3,
        *,
        separate: bool = True,
        pki: MemberPki | None = None,
        peer_mtls: bool = False,
        client_tls: bool = False,
        client_cert_auth: bool = False,
        witnesses: Iterable[int] = (),
        extra_args: Iterable[str] = (),
    ) -> None:
        super().__init__(base, size, witnesses=witnesses, extra_args=extra_args)
        for w in self.witnesses:
            self.members[w].module = "nexus_raft.cli.witness"
        self.separate = separate
        self.pki = pki
        self.peer_mtls = peer_mtls
        self.client_tls = client_tls
        self.client_cert_auth = client_cert_auth
        ports = free_ports(size) if separate else [0] * size
        self.peer_addresses = {
            i: f"127.0.0.1:{ports[i - 1]}" if separate else self.members[i].address
            for i in self.initial
        }
        self.peers_arg = ",".join(f"{i}={self.peer_addresses[i]}" for i in self.initial)
        self.certs = base / "certs"
        if pki is not None:
            self.ca_path = pki.write_ca(self.certs)
            for i in self.initial:
                pki.write(self.certs, f"member{i}", pki.member(i))
            self.client_cert = pki.write(self.certs, "client", pki.named(""))

    @property
    def cluster_id(self) -> str:
        return derive_cluster_id(dict(self.peer_addresses), self.witnesses)

    def args_for(self, node_id: int, *, join: bool = False) -> list[str]:
        assert not join, "SecureCluster does not join members"
        args = super().args_for(node_id)
        if self.separate:
            args += ["--peer-listen", self.peer_addresses[node_id]]
        cert = self.certs / f"member{node_id}.pem"
        key = self.certs / f"member{node_id}.key"
        if self.peer_mtls:
            args += [
                "--peer-cert",
                str(cert),
                "--peer-key",
                str(key),
                "--peer-ca",
                str(self.ca_path),
            ]
        if self.client_tls:
            args += ["--cert", str(cert), "--key", str(key)]
            if self.client_cert_auth:
                args += ["--ca", str(self.ca_path), "--client-cert-auth"]
        return args

    def client_tls_config(self) -> TLSConfig | None:
        """What a legitimate client presents (None without client TLS)."""
        if not self.client_tls:
            return None
        assert self.pki is not None
        if self.client_cert_auth:
            pem = self.pki.named("")
            return TLSConfig(cert=pem.cert, key=pem.key, ca=self.pki.ca.cert)
        return TLSConfig(ca=self.pki.ca.cert)

    def client(self, ids: Iterable[int] | None = None, **options: object) -> SyncClient:
        options.setdefault("tls", self.client_tls_config())
        return super().client(ids, **options)

    def _status_client(self) -> SyncClient:
        if not hasattr(self, "_probe"):
            self._probe = SyncClient(
                self.endpoints(), timeout=2.0, attempt_timeout=0.5, tls=self.client_tls_config()
            )
            self._clients.append(self._probe)
        return self._probe

    def wait_published(self, timeout: float = 30.0) -> None:
        """Wait until every member published its attributes (entries of their own in the log)."""

        def check() -> bool:
            info = self.status_of(self.wait_for_leader(), timeout=2.0)
            return all(m.client_urls for m in info.members)

        wait_until("every member to publish its client address", check, timeout)

    def snapshot_state(self) -> dict[int, tuple[int, int | None, int, int]]:
        """Each running member's (term, leader, last index, commit).

        A member slow to answer (a loaded machine) is asked again, for up to
        20 s: only the answer is waited for, never a particular state.
        """
        out = {}
        for i, m in self.members.items():
            if m.running:
                info = wait_until(
                    f"member {i} to answer a status request",
                    lambda i=i: self.status_of(i, timeout=2.0),
                    20,
                )
                out[i] = (info.term, info.leader_id, info.last_index, info.commit)
        return out

    def wait_converged(self, timeout: float = 20.0) -> dict[int, tuple[int, int | None, int, int]]:
        """Wait until every member agrees on term, leader, last index and commit."""

        def check() -> dict[int, tuple[int, int | None, int, int]] | None:
            state = self.snapshot_state()
            views = set(state.values())
            if len(views) == 1 and next(iter(views))[1] is not None:
                return state
            return None

        return wait_until("the members to agree on term, leader and log", check, timeout)


class Attacker:
    """Sends crafted peer RPCs to one member, over real gRPC.

    ``tls``: what the attacker presents (None: plaintext). ``cluster_id``
    is not a secret (a client's Status call returns it).
    """

    def __init__(
        self, target_id: int, endpoint: str, cluster_id: str, tls: TLSConfig | None = None
    ) -> None:
        scheme = "https://" if tls is not None else ""
        self.client = RaftClient(
            NodeAddress(target_id, scheme + endpoint),
            cluster_id=cluster_id,
            tls=tls,
            timeouts=Timeouts(vote=5.0, append=5.0, timeout_now=5.0, read_index=5.0, snapshot=30),
        )

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> Attacker:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def lazy_chunks(
    total: int, chunk: int = 1 << 20, counter: list[int] | None = None
) -> AsyncIterator[bytes]:
    """``total`` bytes of snapshot data made as the stream pulls them (``counter[0]``: sent)."""
    block = b"\0" * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        if counter is not None:
            counter[0] = sent
        yield piece
