"""WitnessNode in-process: real LevelDB, real gRPC on 127.0.0.1, full members as RaftNodes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import ConfigError, ConsensusError, NotLeader, Unavailable
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.kv.wire import CLUSTER_MISMATCH, NOT_LEADER, UNAVAILABLE, kv_pb2
from nexus_raft.storage import Store
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.client import RaftClient
from nexus_raft.witness import WitnessFrontend, WitnessNode, witness_config

from .inproc import FAST, KVProbe, peers_of, wait_until


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def _witness(tmp_path: Path, peers: dict[int, str], **extra: Any) -> WitnessNode:
    return WitnessNode(witness_config(id=3, listen=peers[3], peers=peers,
                                      data_dir=tmp_path / "w3", **{**FAST, **extra}))


def _full(tmp_path: Path, nid: int, peers: dict[int, str]) -> RaftNode:
    cfg = NodeConfig(id=nid, listen=peers[nid], peers=peers, data_dir=tmp_path / f"n{nid}",
                     witnesses=frozenset({3}), **FAST)
    return RaftNode(cfg, KVStateMachine())


def test_witness_node_refuses_non_witness_config(tmp_path: Path) -> None:
    peers = peers_of(3)
    full = NodeConfig(id=1, listen=peers[1], peers=peers, data_dir=tmp_path,
                      witnesses=frozenset({3}))
    with pytest.raises(ConfigError):
        WitnessNode(full)
    with pytest.raises(TypeError):
        WitnessNode("config")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WitnessFrontend(RaftNode(full, KVStateMachine()))


def test_lone_witness_serves_status_but_no_data_and_keeps_its_vote(tmp_path: Path) -> None:
    """Full members down: no leader; the vote granted over gRPC survives a restart."""

    async def scenario() -> None:
        peers = peers_of(3)
        w = _witness(tmp_path, peers)
        with pytest.raises(Unavailable):
            w.status()
        await w.start()
        probe = KVProbe(peers[3])
        try:
            with pytest.raises(ConsensusError):
                await w.start()
            st = w.status()
            assert (st.id, st.role, st.leader_id, st.last_index) == (3, "follower", None, 3)
            assert st.disk_bytes > 0 and st.listen == peers[3]
            assert [m.kind for m in st.members] == ["voter", "voter", "witness"]
            # Client data calls: no leader known, so a retryable refusal naming no
            # leader, and never a value.
            got = await probe.get(b"k")
            assert got.error.code in (NOT_LEADER, UNAVAILABLE), got
            assert got.error.leader_id == 0 and not got.found and got.value == b""
            put = await probe.put(b"k", b"v")
            assert put.error.code == UNAVAILABLE
            bad = await probe.stub.Get(kv_pb2.GetRequest(cluster_id="other", key=b"k"))
            assert bad.error.code == CLUSTER_MISMATCH
            status = await probe.status()
            assert status.id == 3 and status.cluster_id == w.cluster_id
            assert {m.id: m.kind for m in status.members} == {1: "voter", 2: "voter",
                                                             3: "witness"}
            # Candidate 1 asks for the witness's vote in term 7 over the real transport.
            async with RaftClient(NodeAddress(3, peers[3]), cluster_id=w.cluster_id) as rc:
                r = await rc.request_vote(7, 1, 3, 1)
                assert r.vote_granted and r.term == 7
        finally:
            await probe.close()
            await w.shutdown()
            await w.shutdown()  # idempotent

        # What the witness stored: term 7, vote for 1.
        with Store.open(tmp_path / "w3" / "store") as store:
            hs = LogStore(store).hard_state
            assert (hs.term, hs.vote) == (7, 1)

        w2 = _witness(tmp_path, peers)
        await w2.start()
        try:
            assert w2.status().term == 7
            async with RaftClient(NodeAddress(3, peers[3]), cluster_id=w2.cluster_id) as rc:
                r = await rc.request_vote(7, 2, 3, 1)
                assert not r.vote_granted, "the witness voted twice in term 7"
                r = await rc.request_vote(8, 2, 3, 1)
                assert r.vote_granted and r.term == 8
        finally:
            await w2.shutdown()

    run(scenario())


def test_two_full_members_and_a_witness_commit_and_redirect_clients(tmp_path: Path) -> None:
    async def scenario() -> None:
        peers = peers_of(3)
        nodes = [_full(tmp_path, 1, peers), _full(tmp_path, 2, peers)]
        w = _witness(tmp_path, peers)
        probe = KVProbe(peers[3])
        try:
            for n in nodes:
                await n.start()
            await w.start()
            leader_id = await w.wait_for_leader(timeout=10)
            assert leader_id in (1, 2)
            # A client that only knows the witness is sent to the leader and its writes commit.
            async with Client([peers[3]], timeout=10) as c:
                for i in range(20):
                    await c.put(f"k{i}", b"v" * 2000)
                assert await c.get("k19") == b"v" * 2000
            await wait_until(lambda: w.status().commit >= 3 + 20, what="witness commit")
            st = w.status()
            assert st.leader_id == leader_id and st.leader_address == peers[leader_id]
            assert st.payload_floor >= 23 - 1
            # Linearizable and serializable reads on the witness: NOT_LEADER, no data.
            for serializable in (False, True):
                got = await probe.get(b"k19", serializable=serializable)
                assert got.error.code == NOT_LEADER, got
                assert got.error.leader_address == peers[leader_id]
                assert not got.found and got.value == b""
            front = WitnessFrontend(w.node)
            with pytest.raises(NotLeader) as info:
                await front.read_index()
            assert info.value.leader_id == leader_id
            with pytest.raises(NotLeader):
                await front.add_member(4, "127.0.0.1:1")
            assert front.state_machine is None and not front.is_leader
        finally:
            await probe.close()
            await w.shutdown()
            for n in nodes:
                await n.shutdown()

    run(scenario())


def test_compaction_never_discards_payloads_a_down_full_member_needs(tmp_path: Path) -> None:
    """Full members compact often; the other full member is down during 200 writes, then the
    leader is lost: the witness still holds every payload and hands it over."""

    async def scenario() -> None:
        peers = peers_of(3)
        small = {**FAST, "snapshot_every": 50, "keep_entries": 10}

        def full(nid: int) -> RaftNode:
            cfg = NodeConfig(id=nid, listen=peers[nid], peers=peers,
                             data_dir=tmp_path / f"n{nid}", witnesses=frozenset({3}), **small)
            return RaftNode(cfg, KVStateMachine())

        n1, n2 = full(1), full(2)
        # The witness compacts as eagerly as the full members: the node must still
        # never compact it past its payload floor.
        w = _witness(tmp_path, peers, snapshot_every=50, keep_entries=10)
        survivor: RaftNode | None = None
        try:
            for n in (n1, n2):
                await n.start()
            await w.start()
            lid = await w.wait_for_leader(timeout=10)
            leader, other = (n1, n2) if lid == 1 else (n2, n1)
            await other.shutdown()
            async with Client([peers[leader.id]], timeout=10) as c:
                for i in range(200):
                    await c.put(f"k{i}", b"%d" % i)
            await wait_until(lambda: w.status().commit >= leader.status().commit,
                             what="witness commit")
            assert leader.status().snapshot_index > 100, "the leader compacted"
            st = w.status()
            assert st.payload_window >= 200, "the witness holds the payloads"
            assert w.node.status().snapshot_index <= st.payload_floor
            # Snapshot RPC on the witness refuses to compact them away.
            with pytest.raises(Unavailable, match="still"):
                await WitnessFrontend(w.node).snapshot()
            await leader.shutdown()
            survivor = full(other.id)
            await survivor.start()
            async with Client([peers[other.id]], timeout=20) as c:
                for i in (0, 57, 150, 199):
                    assert await c.get(f"k{i}") == b"%d" % i
                await c.put("after", b"x")
            assert survivor.is_leader
        finally:
            await w.shutdown()
            for member in (n1, n2, survivor):
                if member is not None:
                    await member.shutdown()

    run(scenario())
