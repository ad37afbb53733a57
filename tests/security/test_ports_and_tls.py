"""Peer port apart from the client port, and TLS/mutual TLS from the command line.

Real ``nexus-node`` processes, certificates generated here with
``cryptography``, crafted requests over real gRPC.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.transport import (
    AppendRequest,
    PeerRefused,
    PeerUnavailable,
    RemoteError,
    TLSConfig,
    VoteRequest,
)
from nexus_raft.transport._generated import kv_pb2, kv_pb2_grpc
from tests.integration.harness import REPO_ROOT, wait_until
from tests.transport.certs import MemberPki

from .cluster import Attacker, SecureCluster


@pytest.fixture(scope="module")
def pki() -> MemberPki:
    return MemberPki()


@pytest.fixture
def secure_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[type]:
    made: list[SecureCluster] = []
    request.node._clusters = made

    def make(**options: object) -> SecureCluster:
        cluster = SecureCluster(tmp_path / f"c{len(made)}", 3, **options)  # type: ignore[arg-type]
        made.append(cluster)
        cluster.start()
        cluster.wait_for_leader()
        cluster.wait_published()
        return cluster

    try:
        yield make  # type: ignore[misc]
    finally:
        for cluster in made:
            cluster.close()


def test_client_port_never_serves_peer_rpcs_and_peer_port_no_kv(secure_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: SecureCluster = secure_cluster()
    leader = cluster.wait_for_leader()
    term = cluster.status_of(leader).term

    async def main() -> None:
        client_port = cluster.members[2].address
        async with Attacker(2, client_port, cluster.cluster_id) as a:
            with pytest.raises(RemoteError) as info:
                await a.client.vote(VoteRequest(term=term + 1, candidate_id=1, last_log_term=99))
            assert info.value.status == "UNIMPLEMENTED"
        async with grpc.aio.insecure_channel(cluster.peer_addresses[2]) as channel:
            stub = kv_pb2_grpc.KVStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Get(kv_pb2.GetRequest(key=b"k"), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    asyncio.run(main())
    assert cluster.status_of(2).term == term
    # Without certificates every member says, once, that peers are unauthenticated.
    for m in cluster.members.values():
        assert "peer traffic on 127.0.0.1" in m.log_path.read_text()
        assert "is NOT authenticated" in m.log_path.read_text()


def test_mutual_tls_cluster_serves_members_and_refuses_everyone_else(
    secure_cluster,  # type: ignore[no-untyped-def]
    pki: MemberPki,
) -> None:
    cluster: SecureCluster = secure_cluster(
        pki=pki, peer_mtls=True, client_tls=True, client_cert_auth=True
    )
    client = cluster.client()
    client.put("k", b"v1")
    assert client.get("k") == b"v1"
    leader = cluster.wait_for_leader()
    before = cluster.wait_converged()
    term = before[leader][0]
    follower = next(i for i in cluster.initial if i != leader)
    peer = cluster.peer_addresses[follower]

    def member_tls(member: int | str) -> TLSConfig:
        pem = pki.member(member) if isinstance(member, int) else pki.named(member)
        return TLSConfig(cert=pem.cert, key=pem.key, ca=pki.ca.cert)

    async def main() -> None:
        forged = AppendRequest(term=term + 1, leader_id=leader, prev_log_index=0, heartbeat=True)
        # No certificate: the TLS handshake fails.
        async with Attacker(follower, peer, cluster.cluster_id, TLSConfig(ca=pki.ca.cert)) as a:
            with pytest.raises(PeerUnavailable):
                await a.client.append_entries(forged)
        # A certificate of another CA naming the leader: refused too.
        other = pki.foreign(leader)
        tls = TLSConfig(cert=other.cert, key=other.key, ca=pki.ca.cert)
        async with Attacker(follower, peer, cluster.cluster_id, tls) as a:
            with pytest.raises(PeerUnavailable):
                await a.client.append_entries(forged)
        # A real member's certificate (not the leader's) speaking as the leader.
        impostor = next(i for i in cluster.initial if i not in (leader, follower))
        async with Attacker(follower, peer, cluster.cluster_id, member_tls(impostor)) as a:
            with pytest.raises(PeerRefused, match=f"member {impostor} cannot speak as"):
                await a.client.append_entries(forged)
            with pytest.raises(PeerRefused):
                await a.client.vote(
                    VoteRequest(term=term + 1, candidate_id=leader, last_log_term=term + 1)
                )
        # The cluster's client certificate (no member name) on the peer port.
        async with Attacker(follower, peer, cluster.cluster_id, member_tls("")) as a:
            with pytest.raises(PeerRefused, match="names no member"):
                await a.client.append_entries(forged)

    asyncio.run(main())
    assert cluster.snapshot_state() == before
    # A client without a certificate cannot use the client port.
    bare = SyncClient(cluster.endpoints(), timeout=2.0, tls=TLSConfig(ca=pki.ca.cert))
    try:
        with pytest.raises(NexusRaftError, match="require client certificates, give one"):
            bare.get("k")
    finally:
        bare.close()
    log = cluster.members[follower].log_path.read_text()
    assert "cannot speak as member" in log and "is NOT authenticated" not in log
    # nexusctl with the client's certificate.
    cert, key = cluster.client_cert
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    ctl = [sys.executable, "-m", "nexus_raft.cli.ctl", "--endpoints", ",".join(cluster.endpoints())]
    tls_args = ["--cert", str(cert), "--key", str(key), "--ca", str(cluster.ca_path)]
    out = subprocess.run([*ctl, *tls_args, "get", "k"], capture_output=True, text=True, env=env,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "v1", out.stderr
    out = subprocess.run([*ctl, "--ca", str(cluster.ca_path), "--timeout", "2", "get", "k"],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_witness_takes_the_same_tls_flags_and_refuses_strangers(
    secure_cluster,  # type: ignore[no-untyped-def]
    pki: MemberPki,
) -> None:
    cluster: SecureCluster = secure_cluster(
        pki=pki, peer_mtls=True, client_tls=True, client_cert_auth=True, witnesses=[3]
    )
    client = cluster.client()
    client.put("k", b"v")
    assert client.get("k") == b"v"
    info = wait_until(  # over the witness's TLS client port
        "the witness to know the leader",
        lambda: i if (i := cluster.status_of(3, timeout=2.0)).leader_id else None,
        30.0,
    )
    assert info.id == 3 and info.leader_id in (1, 2)
    before = cluster.wait_converged()
    peer = cluster.peer_addresses[3]

    async def main() -> None:
        beat = AppendRequest(term=before[3][0] + 1, leader_id=1, heartbeat=True)
        async with Attacker(3, peer, cluster.cluster_id, TLSConfig(ca=pki.ca.cert)) as a:
            with pytest.raises(PeerUnavailable):
                await a.client.append_entries(beat)
        pem = pki.member(2)
        as_two = TLSConfig(cert=pem.cert, key=pem.key, ca=pki.ca.cert)
        async with Attacker(3, peer, cluster.cluster_id, as_two) as a:
            with pytest.raises(PeerRefused, match="member 2 cannot speak as member 1"):
                await a.client.append_entries(beat)

    asyncio.run(main())
    assert cluster.snapshot_state() == before
    assert "is NOT authenticated" not in cluster.members[3].log_path.read_text()


def test_tls_client_port_refuses_plaintext_and_clients_trusting_another_ca(
    secure_cluster,  # type: ignore[no-untyped-def]
    pki: MemberPki,
) -> None:
    """Server-authenticated TLS (``--cert``/``--key``, no ``--client-cert-auth``):
    nexusctl trusting the cluster's CA needs no certificate of its own; a
    plaintext client, and one that trusts another CA, are refused in one line."""
    cluster: SecureCluster = secure_cluster(pki=pki, client_tls=True)
    cluster.client().put("k", b"v")
    other_ca = cluster.certs / "other-ca.pem"
    other_ca.write_bytes(pki.other_ca.cert)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    ctl = [sys.executable, "-m", "nexus_raft.cli.ctl", "--endpoints", ",".join(cluster.endpoints())]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ctl, *args], capture_output=True, text=True, env=env,
                              timeout=60)  # fmt: skip

    trusted = run("--ca", str(cluster.ca_path), "get", "k")
    assert trusted.returncode == 0 and trusted.stdout == "v\n", trusted.stderr
    # Each refusal says what to change: TLS at all (--ca), or the CA trusted.
    for refused, says in ((run("--timeout", "2", "get", "k"), "serve TLS, connect with TLS"),
                          (run("--ca", str(other_ca), "--timeout", "2", "get", "k"),
                           "certificate is not signed by a trusted CA")):  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
        assert says in refused.stderr, refused.stderr
