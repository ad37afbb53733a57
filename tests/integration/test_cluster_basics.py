"""A healthy 3-member cluster of real nexus-node processes: the everyday paths.

Election, replication to every member, exactly-once retries over the wire,
watch replay and resume, input validation, leadership transfer. These tests
share one cluster (module fixture); the destructive ones live elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import grpc
import pytest

from nexus_raft.errors import ClusterMismatch, InvalidArgument, TooLarge
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.types import NodeInfo
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

from .harness import ProcessCluster, next_event, wait_until

pytestmark = pytest.mark.process


def test_one_leader_is_elected_and_all_agree(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader()

    def agreed() -> list[NodeInfo] | None:
        # Every member names the same leader in the same term, and only it leads.
        views = [cluster.status_of(i) for i in cluster.initial]
        same = len({(v.leader_id, v.term) for v in views}) == 1
        return views if same and [v.role for v in views].count("leader") == 1 else None

    views = wait_until("all members to agree on the leader", agreed, 10)
    leader = views[0].leader_id or 0
    members = cluster.status_of(leader).members
    assert sorted((m.id, m.address, m.kind) for m in members) == [
        (i, cluster.members[i].address, "voter") for i in cluster.initial
    ]


def test_writes_replicate_to_every_member(cluster: ProcessCluster) -> None:
    client = cluster.client(ids=[cluster.initial[-1]])  # one member is enough
    revisions = [client.put(f"repl/{i}", f"v{i}".encode()) for i in range(20)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 20
    assert client.get("repl/7") == b"v7"
    assert client.delete("repl/0") is True
    assert client.cas("repl/1", b"v1", b"new") is True
    assert client.cas("repl/1", b"v1", b"again") is False
    last = cluster.status_of(cluster.wait_for_leader()).commit
    for node_id in cluster.initial:
        cluster.wait_applied(node_id, last)
        local = cluster.client(ids=[node_id])
        assert local.get("repl/7", serializable=True) == b"v7"
        assert local.get("repl/0", serializable=True) is None
        assert local.get("repl/1", serializable=True) == b"new"
        assert len(local.list_keys("repl/", serializable=True)) == 19


def test_concurrent_clients_are_batched(cluster: ProcessCluster) -> None:
    async def go() -> int:
        async with Client(cluster.endpoints(), timeout=15) as client:
            await asyncio.gather(*(client.put(f"conc/{i}", b"x" * 256) for i in range(256)))
            keys = await client.list_keys("conc/")
            assert len(keys) == 256
            return client.batches_sent

    batches = asyncio.run(go())
    assert batches < 64, f"256 concurrent puts took {batches} Batch RPCs"


def test_retry_with_the_same_client_id_and_seq_is_applied_once(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader()
    request = kv_pb2.CasRequest(
        key=b"once/k", expect_absent=True, new_value=b"first", client_id=987654321, seq=1
    )

    async def go() -> tuple[object, object, object]:
        async with grpc.aio.insecure_channel(cluster.members[leader].address) as channel:
            stub = kv_pb2_grpc.KVStub(channel)
            first = await stub.Cas(request, timeout=10)
            # The "lost answer" retry: the very same request again.
            again = await stub.Cas(request, timeout=10)
            # A new seq is a new operation and fails its comparison.
            request.seq = 2
            fresh = await stub.Cas(request, timeout=10)
            return first, again, fresh

    first, again, fresh = asyncio.run(go())
    assert first.error.code == kv_pb2.OK and first.succeeded  # type: ignore[attr-defined]
    assert again.error.code == kv_pb2.OK and again.succeeded  # type: ignore[attr-defined]
    assert again.revision == first.revision  # type: ignore[attr-defined]
    assert not fresh.succeeded  # type: ignore[attr-defined]
    client = cluster.client()
    assert client.get("once/k") == b"first"
    events = client.watch("once/", start_revision=1)
    assert next_event(events).revision == first.revision  # type: ignore[attr-defined]
    events.close()


def test_watch_replays_history_then_streams_live(cluster: ProcessCluster) -> None:
    client = cluster.client()
    first = client.put("watch/a", b"1")
    client.put("watch/b", b"2")
    client.delete("watch/a")
    stream = client.watch("watch/", start_revision=first)
    got = [next_event(stream) for _ in range(3)]
    assert [(e.key, e.value) for e in got] == [
        (b"watch/a", b"1"),
        (b"watch/b", b"2"),
        (b"watch/a", None),
    ]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next_event, stream)
        client.put("watch/c", b"3")
        live = pending.result()
    assert (live.key, live.value) == (b"watch/c", b"3")
    # Resume from a revision: a new watch from the last seen + 1 sees only later events.
    client.put("watch/d", b"4")
    resumed = client.watch("watch/", start_revision=live.revision + 1)
    assert next_event(resumed).key == b"watch/d"
    stream.close()
    resumed.close()


def test_bad_input_is_rejected_and_the_cluster_keeps_serving(cluster: ProcessCluster) -> None:
    client = cluster.client(timeout=5)
    with pytest.raises(TooLarge, match="limit"):
        client.put("bad/big", b"x" * ((1 << 20) + 1))
    with pytest.raises(InvalidArgument, match="NUL"):
        client.put("bad/\x00key", b"v")
    with pytest.raises(InvalidArgument, match="empty"):
        client.put("", b"v")
    with pytest.raises(InvalidArgument, match="UTF-8"):
        client.put(b"bad/\xff", b"v")
    with pytest.raises(TooLarge):
        client.get("k" * 5000)
    foreign = cluster.client(cluster_id="some-other-cluster", timeout=5)
    with pytest.raises(ClusterMismatch, match="some-other-cluster"):
        foreign.put("bad/k", b"v")
    with pytest.raises(ClusterMismatch):
        foreign.status()
    assert client.put("bad/ok", b"fine") > 0
    assert client.get("bad/ok") == b"fine"
    assert client.list_keys("bad/") == [b"bad/ok"]


def test_leadership_transfer(cluster: ProcessCluster) -> None:
    leader = cluster.wait_for_leader()
    target = next(i for i in cluster.initial if i != leader)
    client = cluster.client()
    client.transfer_leader(target)
    assert cluster.wait_for_leader(not_id=leader) == target
    client.put("transfer/k", b"v")
    assert client.leader == cluster.members[target].address
    wait_until(
        "the old leader to follow the new one",
        lambda: cluster.status_of(leader).leader_id == target,
        10,
    )
