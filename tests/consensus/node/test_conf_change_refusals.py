"""Membership changes the core refuses reach RaftNode's caller as clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_raft.consensus.core.messages import Rejected, RejectReason
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import Unavailable, UnsafeRemoval
from nexus_raft.kv.state_machine import KVStateMachine
from tests.consensus.node.harness import Cluster, put


def test_conf_change_refused_before_leaders_first_entry_commits_is_unavailable(
    tmp_path: Path,
) -> None:
    # The window is a few milliseconds after an election, too short to hit
    # reliably with real nodes: check the mapping of the core's refusal.
    node = RaftNode(Cluster(tmp_path).config(1), KVStateMachine())
    err = node._rejection(Rejected(RejectReason.LEADER_NOT_READY, 1))
    assert isinstance(err, Unavailable)  # transient: the client retries it
    assert "not yet committed an entry of its term" in str(err)
    assert "\n" not in str(err)


def test_removing_a_down_full_member_of_2_plus_1_is_refused_with_one_line(
    tmp_path: Path,
) -> None:
    """Real nodes (LevelDB, gRPC): ``remove_member`` of the down full member of a
    2 full + 1 witness cluster raises UnsafeRemoval, and nothing changes."""

    async def scenario() -> None:
        c = Cluster(tmp_path, witnesses=frozenset({3}))
        try:
            await c.start_all()
            for i in range(5):
                await c.propose(put(f"k{i}", b"v"))
            leader = await c.leader()
            other = next(n for n in (c.nodes[1], c.nodes[2]) if n is not leader)
            await c.stop(other.id)
            await leader.propose(put("alone", b"v"), timeout=8.0)
            with pytest.raises(UnsafeRemoval) as info:
                await leader.remove_member(other.id)
            text = str(info.value)
            assert "\n" not in text
            assert f"removing {other.id} would leave committed entries" in text
            assert "add a full member first" in text
            assert {m.id for m in leader.status().members} == {1, 2, 3}
            await leader.propose(put("still", b"v"), timeout=8.0)
        finally:
            await c.close()

    asyncio.run(scenario())
