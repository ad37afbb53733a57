"""Follower forwarding with real nexus-node processes.

A client that reaches only followers still writes: the followers forward to
the leader over their peer connections. Two setups: a follower-only endpoint
list on loopback (the leader is reachable, but only by its peers as far as
the client knows), and real network namespaces where the leader's machine
silently drops everything to the client's address.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

from .harness import Member, ProcessCluster, wait_until
from .netns import Netns, netns_unavailable

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]


def _kinds(cluster: ProcessCluster, leader: int) -> dict[int, str]:
    return {m.id: m.kind for m in cluster.status_of(leader).members}


def test_writes_and_admin_calls_through_followers_only(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, spare=1)
    leader = cluster.wait_for_leader()
    followers = [i for i in cluster.initial if i != leader]
    client = cluster.client(ids=followers)
    revisions = [client.put(f"fw/{i}", str(i).encode()) for i in range(40)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 40
    assert client.cas("fw/0", b"0", b"zero") is True
    assert client.delete("fw/1") is True
    assert client.get("fw/0") == b"zero"  # linearizable, through a follower's ReadIndex
    # A follower answers a write itself, naming the leader it forwarded to;
    # asked directly (a client that knows the leader would go there itself),
    # it takes the admin calls too.
    channel = grpc.insecure_channel(cluster.members[followers[0]].address)
    try:
        stub = kv_pb2_grpc.KVStub(channel)
        resp = stub.Put(kv_pb2.PutRequest(key=b"fw/raw", value=b"r", client_id=9, seq=1),
                        timeout=5)
        assert resp.error.code == kv_pb2.OK
        assert resp.error.leader_address == cluster.members[leader].address
        again = stub.Put(kv_pb2.PutRequest(key=b"fw/raw", value=b"r", client_id=9, seq=1),
                         timeout=5)
        assert again.revision == resp.revision  # the session answered the retry: applied once
        # Admin calls through the follower: add, remove, snapshot of the leader.
        spare = cluster.members[4].address
        added = stub.AddMember(kv_pb2.AddMemberRequest(id=4, address=spare, role="learner"),
                               timeout=10)
        assert added.error.code == kv_pb2.OK, added.error.message
        assert _kinds(cluster, leader)[4] == "learner"
        removed = stub.RemoveMember(kv_pb2.RemoveMemberRequest(id=4), timeout=10)
        assert removed.error.code == kv_pb2.OK, removed.error.message
        assert 4 not in _kinds(cluster, leader)
        snap = stub.Snapshot(kv_pb2.SnapshotRequest(leader=True), timeout=10)
        assert snap.error.code == kv_pb2.OK and snap.index >= 40
        assert cluster.status_of(leader).snapshot_index >= 40
        # The leader holds every write exactly once.
        on_leader = cluster.client(ids=[leader])
        assert on_leader.get("fw/39", serializable=True) == b"39"
        assert on_leader.get("fw/1", serializable=True) is None
        # Leadership moves through the follower too.
        moved = stub.TransferLeader(kv_pb2.TransferLeaderRequest(id=followers[1]), timeout=10)
        assert moved.error.code == kv_pb2.OK, moved.error.message
        wait_until(f"{followers[1]} to lead", lambda: cluster.status_of(followers[1]).is_leader,
                   30)
    finally:
        channel.close()


def test_redirect_mode_answers_not_leader(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, extra_args=["--redirect"])
    leader = cluster.wait_for_leader()
    follower = next(i for i in cluster.initial if i != leader)
    channel = grpc.insecure_channel(cluster.members[follower].address)
    try:
        stub = kv_pb2_grpc.KVStub(channel)
        resp = stub.Put(kv_pb2.PutRequest(key=b"r", value=b"1", client_id=7, seq=1), timeout=5)
        assert resp.error.code == kv_pb2.NOT_LEADER
        assert resp.error.leader_address == cluster.members[leader].address
    finally:
        channel.close()
    # The client follows the redirect to the leader.
    client = cluster.client(ids=[follower])
    client.put("r", b"2")
    assert client.leader == cluster.members[leader].address


# --- real network namespaces -----------------------------------------------------------

_PORT = 7100


@contextlib.contextmanager
def _netns_cluster(base: Path) -> Iterator[tuple[Netns, dict[int, Member]]]:
    why = netns_unavailable()
    if why is not None:
        pytest.skip(why)
    net = Netns("fwd", 3)
    members: dict[int, Member] = {}
    try:
        peers = ",".join(f"{i + 1}={a}:{_PORT}" for i, a in enumerate(net.addresses))
        for i, address in enumerate(net.addresses):
            m = Member(i + 1, f"{address}:{_PORT}", base / f"node{i + 1}",
                       base / f"node{i + 1}.log", prefix=net.exec_prefix(i))
            members[i + 1] = m
            m.start(["--id", str(i + 1), "--listen", m.address, "--peers", peers,
                     "--data-dir", str(m.data_dir), "--log-level", "info"])
        yield net, members
    finally:
        for m in members.values():
            m.kill()
        net.close()


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextlib.contextmanager
def _router_failures() -> Iterator[list[str]]:
    """The KV client's failed attempts ("Batch to HOST:PORT failed: ...") meanwhile."""
    logger = logging.getLogger("nexus_raft.kv.client.router")
    seen: list[str] = []
    handler = _Collect(seen)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _leader_of(client: SyncClient, members: dict[int, Member]) -> int:
    def check() -> int | None:
        for m in members.values():
            try:
                info = client.status(endpoint=m.address, timeout=1.0)
            except NexusRaftError:
                continue
            if info.is_leader:
                return m.id
        return None

    return wait_until("a leader", check, 60)


def test_writes_through_a_follower_when_the_client_cannot_reach_the_leader(
    tmp_path: Path,
) -> None:
    with _netns_cluster(tmp_path) as (net, members):
        with SyncClient([m.address for m in members.values()], timeout=10.0) as probe:
            leader = _leader_of(probe, members)
        # The leader first: the client talks to it directly until the cut.
        endpoints = [members[leader].address] + [
            m.address for m in members.values() if m.id != leader
        ]
        with SyncClient(endpoints, timeout=10.0) as client:
            client.put("ns/before", b"0")
            assert client.leader == members[leader].address
            # The leader's machine now drops every packet to the client: the
            # client's connection to it goes silent (no reset, no refusal).
            net.cut(leader - 1, net.host_address)
            latencies = []
            first: list[str] = []
            with _router_failures() as failures:
                for i in range(30):
                    start = time.monotonic()
                    client.put(f"ns/{i}", str(i).encode())
                    latencies.append(time.monotonic() - start)
                    if i == 0:
                        first = list(failures)
                silent_after_first = failures[len(first):]
            assert client.get("ns/29") == b"29"  # ReadIndex through a follower
            # The first write after the cut pays one attempt timeout (1 s) on
            # the silent leader; after that the leader is avoided: no later
            # write tries it (counted, not timed: a loaded machine makes a
            # forwarded write slow without the client waiting on the leader).
            print("latencies after the cut:", [round(x, 3) for x in latencies])
            leader_address = members[leader].address
            assert any(leader_address in f for f in first), first
            assert latencies[0] < 10.0, latencies
            assert not [f for f in silent_after_first if leader_address in f], silent_after_first
            # The leader kept its leadership: its peers still reach it.
            others = [m for m in members.values() if m.id != leader]

            def views() -> set[int | None] | None:
                try:
                    seen = {client.status(endpoint=m.address, timeout=5.0).leader_id
                            for m in others}
                except NexusRaftError:
                    return None  # a slow answer on a loaded machine: ask again
                return seen if seen == {leader} else None

            wait_until(f"the followers to name {leader} as the leader", views, 30)
            net.heal()
