"""RaftNode membership: learners, promotion, removal, leadership transfer, witnesses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_raft.consensus import NodeConfig, RaftNode
from nexus_raft.errors import NotLeader
from nexus_raft.kv.state_machine import KVStateMachine
from tests.consensus.node.harness import FAST, Cluster, put, value_of, wait_until


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def _kinds(node: RaftNode) -> dict[int, str]:
    return {m.id: m.kind for m in node.status().members}


def test_add_learner_then_promote(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        joiner: RaftNode | None = None
        try:
            await c.start_all()
            for i in range(20):
                await c.propose(put(f"k{i}", b"v"))
            # Compact everywhere first: the joiner can only catch up by snapshot, and
            # learns the membership and every endpoint from it.
            await c.wait_applied((await c.leader()).status().commit)
            for node in c.live():
                await node.snapshot()
            endpoint = f"127.0.0.1:{c.spare_ports[0]}"
            joiner = RaftNode(NodeConfig(
                id=4, listen=endpoint, peers={**c.peers, 4: endpoint},
                data_dir=tmp_path / "n4", cluster_id=c.cluster_id, join=True,
                tick_interval=FAST["tick_interval"], election_ticks=int(FAST["election_ticks"]),
                heartbeat_ticks=int(FAST["heartbeat_ticks"]),
            ), KVStateMachine())
            await joiner.start()
            # Membership changes go through whoever leads (Cluster.add_member):
            # on a loaded box the lead may move at any time.
            await c.add_member(4, endpoint, "learner")
            await wait_until(lambda: value_of(joiner, "k19") == b"v", what="learner catch-up")
            await wait_until(lambda: joiner.status().snapshot_index >= 20, what="snapshot meta")
            assert {m.id: m.address for m in joiner.status().members} == {**c.peers, 4: endpoint}
            leader = await c.leader()
            await wait_until(lambda: _kinds(leader).get(4) == "learner", what="a learner")
            assert not joiner.is_leader
            await c.add_member(4, endpoint, "voter")
            leader = await c.leader()
            await wait_until(lambda: _kinds(leader).get(4) == "voter", what="promoted")
            await c.propose(put("after", b"promote"))
            await wait_until(lambda: value_of(joiner, "after") == b"promote")
            await wait_until(lambda: _kinds(joiner).get(4) == "voter", what="joiner sees itself")
            # The new voter counts toward the quorum: with two old nodes gone,
            # the remaining old node and the new voter still commit.
            leader = await c.leader()
            others = [n for n in c.live() if n is not leader]
            await c.stop(others[0].id)
            await c.propose(put("quorum", b"ok"), timeout=8.0)
        finally:
            if joiner is not None:
                await joiner.shutdown()
            await c.close()

    run(scenario())


def test_remove_voter(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            # A committed write first: a leader refuses membership changes
            # until an entry of its term has committed.
            await c.propose(put("before-remove", b"0"))
            leader = await c.leader()
            victim = next(n for n in c.live() if n is not leader)
            await c.remove_member(victim.id)
            await c.stop(victim.id)
            # Two voters left: both must agree, and they do.
            await c.propose(put("after-remove", b"1"))
            await wait_until(lambda: all(value_of(n, "after-remove") == b"1" for n in c.live()))
            for node in c.live():
                await wait_until(lambda n=node: victim.id not in _kinds(n))  # type: ignore[misc]
        finally:
            await c.close()

    run(scenario())


def test_transfer_leadership(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            await leader.propose(put("a", b"1"))
            target = next(n for n in c.live() if n is not leader)
            await leader.transfer_leadership(target.id)
            await wait_until(lambda: target.is_leader, what="target leads")
            assert not leader.is_leader
            assert leader.leader_id == target.id
            await target.propose(put("b", b"2"))
            await wait_until(lambda: all(value_of(n, "b") == b"2" for n in c.live()))
        finally:
            await c.close()

    run(scenario())


def test_two_full_members_and_a_witness_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, witnesses=frozenset({3}), snapshot_every=20, keep_entries=5)
        try:
            await c.start_all()
            witness = c.nodes[3]
            assert witness.state_machine is None
            leader = await c.leader()
            assert leader.id != 3
            for i in range(30):
                await leader.propose(put(f"w{i}", b"p" * 200))
            full = [c.nodes[1], c.nodes[2]]
            await wait_until(lambda: all(value_of(n, "w29") == b"p" * 200 for n in full))
            st = leader.status()
            kinds = {m.id: m.kind for m in st.members}
            assert kinds[3] == "witness"
            await wait_until(lambda: witness.status().commit >= st.commit, what="witness commit")
            # The witness was told every full voter holds the payloads: it drops them,
            # and its (metadata) log is compacted like any other.
            def floor() -> int:
                return next(m.payload_floor for m in witness.status().members if m.id == 3)

            await wait_until(lambda: floor() >= st.commit - 1, what="witness payload floor")
            await wait_until(lambda: witness.status().snapshot_index > 0, what="witness compaction")
            with pytest.raises(NotLeader):
                await witness.propose(put("no", b"1"))
            with pytest.raises(NotLeader):
                await witness.read_index()
            # The other full member goes away: leader + witness still commit.
            other = next(n for n in full if n is not leader)
            await c.stop(other.id)
            await leader.propose(put("with-witness", b"ok"), timeout=8.0)
            assert value_of(leader, "with-witness") == b"ok"
        finally:
            await c.close()

    run(scenario())
