"""Membership changes the core refuses reach RaftNode's caller as clear errors."""

from __future__ import annotations

from pathlib import Path

from nexus_raft.consensus.core.messages import Rejected, RejectReason
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import Unavailable
from nexus_raft.kv.state_machine import KVStateMachine
from tests.consensus.node.harness import Cluster


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
