"""Cluster identity with real nexus-node processes (issue #10 items 11 and 12).

The derived cluster id covers the whole initial configuration, and a data
directory records its cluster id and member id at the first start; after
that the record wins over the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nexus_raft.kv.client.sync import SyncClient

from .harness import Member, ProcessCluster, free_ports, wait_until

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]


def _exit_of(member: Member, timeout: float = 30.0) -> int:
    assert member.proc is not None
    return member.proc.wait(timeout=timeout)


def _last_error_line(member: Member) -> str:
    lines = [ln for ln in member.log_tail(40).splitlines() if "error" in ln.lower()]
    assert lines, member.log_tail()
    return lines[-1]


def test_a_member_started_without_the_witness_flag_is_refused(tmp_path: Path) -> None:
    """Node 2 without --witness 3 used to join nodes 1 and 3 started with it
    (node 2 logged ADD_VOTER 3, the others ADD_WITNESS 3, same cluster id)."""
    ports = free_ports(3)
    addresses = {i: f"127.0.0.1:{p}" for i, p in zip((1, 2, 3), ports, strict=True)}
    peers = ",".join(f"{i}={a}" for i, a in addresses.items())
    members = {
        i: Member(i, addresses[i], tmp_path / f"m{i}", tmp_path / f"m{i}.log",
                  module="nexus_raft.cli.witness" if i == 3 else "nexus_raft.cli.node")
        for i in addresses
    }  # fmt: skip

    def args(i: int, *extra: str) -> list[str]:
        return ["--id", str(i), "--listen", addresses[i], "--peers", peers,
                "--data-dir", str(members[i].data_dir), *extra]  # fmt: skip

    try:
        members[1].start(args(1, "--witness", "3"))
        members[3].start(args(3))
        members[2].start(args(2))  # misconfigured: no --witness 3
        assert _exit_of(members[2]) == 2
        line = _last_error_line(members[2])
        assert "members 1, 3 belong to cluster" in line and "--witness" in line, line
        # Node 1 and the witness carry on; node 2, started right, joins them.
        members[2].data_dir.rename(tmp_path / "m2-refused")
        members[2].start(args(2, "--witness", "3"))
        with SyncClient([addresses[1], addresses[2]], timeout=20.0) as client:
            client.put("k", b"v")
            kinds = {m.id: m.kind for m in client.members()}
            assert kinds == {1: "voter", 2: "voter", 3: "witness"}
            info = wait_until(
                "member 2 to serve",
                lambda: client.status(endpoint=addresses[2], timeout=2.0),
                60,
            )
            assert info.members and {m.id: m.kind for m in info.members}[3] == "witness"
    finally:
        for m in members.values():
            m.kill()


@pytest.mark.slow
def test_restart_with_an_updated_peer_list_keeps_the_cluster(make_cluster: MakeCluster) -> None:
    """A member restarted with --peers naming a member added at run time used
    to derive a new cluster id, and sat as a pre-candidate for ever."""
    cluster = make_cluster(3, spare=1)
    client = cluster.client()
    client.put("a", b"1")
    cluster_id = client.status().cluster_id
    cluster.start_joining(4)  # as a voter: added as a learner, promoted once caught up
    wait_until("member 4 to be a voter", lambda: {
        m.id: m.kind for m in client.members()}.get(4) == "voter", 30)
    leader = cluster.wait_for_leader()
    restarted = next(i for i in cluster.initial if i != leader)
    cluster.members[restarted].terminate()
    new_peers = cluster.peers_arg + f",4={cluster.members[4].address}"
    args = cluster.args_for(restarted)
    args[args.index("--peers") + 1] = new_peers
    cluster.members[restarted].start(args)
    info = wait_until(
        "the restarted member to follow the leader again",
        lambda: i if (i := cluster.status_of(restarted)).leader_id else None,
        30,
    )
    assert info.cluster_id == cluster_id
    client.put("b", b"2")
    cluster.wait_applied(restarted, cluster.status_of(cluster.wait_for_leader()).commit)
    assert cluster.client(ids=[restarted]).get("b", serializable=True) == b"2"


@pytest.mark.slow
def test_a_data_directory_refuses_another_id_or_cluster(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    client.put("k", b"v")
    cluster_id = client.status().cluster_id
    victim = cluster.members[1]
    victim.terminate()
    base = cluster.args_for(1)

    # Another member id on member 1's directory.
    wrong_id = list(base)
    wrong_id[wrong_id.index("--id") + 1] = "2"
    victim.start(wrong_id)
    assert _exit_of(victim) == 2
    line = _last_error_line(victim)
    assert "belongs to member 1" in line and cluster_id in line, line

    # Another cluster id.
    victim.start([*base, "--cluster-id", "nx-someone-else"])
    assert _exit_of(victim) == 2
    line = _last_error_line(victim)
    assert f"belongs to cluster {cluster_id}" in line and "nx-someone-else" in line, line

    # Another cluster's peer list (no --cluster-id): it is still served under
    # its own recorded id, never under the new one.
    other = list(base)
    other[other.index("--peers") + 1] = f"1={victim.address},7=127.0.0.1:9,8=127.0.0.1:10"
    victim.start(other)
    info = wait_until("member 1 to serve", lambda: cluster.status_of(1), 20)
    assert info.cluster_id == cluster_id
    victim.terminate()
    victim.start(base)
    wait_until("member 1 back in the cluster", lambda: cluster.status_of(1).leader_id, 30)
    assert client.get("k") == b"v"
