"""The simulator's invariant checkers, fed hand-made histories (each rule must be able to fail)."""

from __future__ import annotations

import pytest

from nexus_raft.consensus.core.messages import Entry, EntryType, HardState
from tests.sim.checker import Checker, ReadIssue, Violation


def E(index: int, term: int, data: bytes | None = b"x") -> Entry:
    return Entry(index, term, EntryType.NORMAL, data)


def test_election_safety_two_leaders_in_one_term_fail() -> None:
    ck = Checker()
    ck.leader_elected(1, 3)
    ck.leader_elected(1, 3)  # the same leader seen twice is fine
    ck.leader_elected(2, 4)
    with pytest.raises(Violation, match="election safety"):
        ck.leader_elected(3, 3)


def test_leader_append_only_rewrite_fails() -> None:
    ck = Checker()
    ck.appended(1, [E(1, 1), E(2, 1)], 0, 0, leader_term=1)
    ck.appended(1, [E(3, 1)], 1, 2, leader_term=1)
    with pytest.raises(Violation, match="leader append-only"):
        ck.appended(1, [E(2, 1, b"y")], 1, 3, leader_term=1)


def test_follower_may_truncate() -> None:
    ck = Checker()
    ck.appended(2, [E(1, 1), E(2, 1)], 0, 0, leader_term=0)
    ck.appended(2, [E(2, 2, b"z")], 1, 2, leader_term=0)


def test_log_matching_different_payload_same_index_term_fails() -> None:
    ck = Checker()
    ck.appended(1, [E(1, 1, b"a")], 0, 0, 0)
    with pytest.raises(Violation, match="log matching"):
        ck.appended(2, [E(1, 1, b"b")], 0, 0, 0)


def test_log_matching_different_prefix_fails() -> None:
    ck = Checker()
    ck.appended(1, [E(1, 1), E(2, 2)], 0, 0, 0)
    # Node 2 holds (2, 2) on top of a term-3 entry at index 1: the prefixes differ.
    with pytest.raises(Violation, match="log matching"):
        ck.appended(2, [E(2, 2)], 3, 1, 0)


def test_log_matching_metadata_only_copy_matches() -> None:
    ck = Checker()
    ck.appended(1, [E(1, 1, b"a")], 0, 0, 0)
    ck.appended(3, [E(1, 1, None)], 0, 0, 0)  # a witness's copy without payload
    with pytest.raises(Violation, match="log matching"):
        ck.appended(3, [Entry(1, 1, EntryType.CONF_CHANGE, b"a")], 0, 0, 0)


def test_log_matching_gap_fails() -> None:
    ck = Checker()
    with pytest.raises(Violation, match="non-contiguous"):
        ck.appended(1, [E(1, 1), E(3, 1)], 0, 0, 0)


def test_leader_completeness_missing_committed_entry_fails() -> None:
    ck = Checker()
    ck.committed(5, 2)
    ck.leader_elected(3, 4)
    assert ck.required_for(3) == 5
    with pytest.raises(Violation, match="leader completeness"):
        ck.leader_log(3, 4, last_index=5, snap_index=0, term_at=1)
    ck.leader_elected(1, 5)
    with pytest.raises(Violation, match="leader completeness"):
        ck.leader_log(1, 5, last_index=4, snap_index=0, term_at=None)
    ck.leader_elected(2, 6)
    ck.leader_log(2, 6, last_index=7, snap_index=0, term_at=2)
    ck.leader_elected(4, 7)
    ck.leader_log(4, 7, last_index=9, snap_index=6, term_at=None)  # covered by its snapshot


def test_state_machine_safety_fails() -> None:
    ck = Checker()
    assert ck.applied_entry(1, E(1, 1, b"a"), 1)
    assert not ck.applied_entry(2, E(1, 1, b"a"), 1)
    with pytest.raises(Violation, match="state machine safety"):
        ck.applied_entry(3, E(1, 1, b"b"), 1)
    with pytest.raises(Violation, match="state machine safety"):
        ck.applied_entry(3, E(1, 2, b"a"), 1)


def test_apply_order_fails() -> None:
    ck = Checker()
    with pytest.raises(Violation, match="apply order"):
        ck.applied_entry(1, E(2, 1), 1)


def test_witness_apply_then_full_apply_records_payload() -> None:
    ck = Checker()
    assert not ck.applied_entry(3, E(1, 1, None), 1)
    assert ck.applied_entry(1, E(1, 1, b"a"), 1)
    with pytest.raises(Violation):
        ck.applied_entry(2, E(1, 1, b"b"), 1)


def test_hard_state_rules() -> None:
    ck = Checker()
    assert ck.hard_state(1, HardState(1, 1, 0)) is False
    assert ck.hard_state(1, HardState(1, 1, 3)) is True
    with pytest.raises(Violation, match="commit monotonic"):
        ck.hard_state(1, HardState(1, 1, 2))
    ck.hard_state(2, HardState(2, 2, 0))
    with pytest.raises(Violation, match="one vote per term"):
        ck.hard_state(2, HardState(2, 3, 0))
    ck.hard_state(4, HardState(5, 0, 0))
    with pytest.raises(Violation, match="term monotonic"):
        ck.hard_state(4, HardState(4, 0, 0))


def test_restart_must_keep_vote_and_commit() -> None:
    ck = Checker()
    ck.hard_state(3, HardState(7, 1, 4))
    ck.restarted(3, 7, 1, 4)
    with pytest.raises(Violation, match="durable vote"):
        ck.restarted(3, 7, 2, 4)
    with pytest.raises(Violation, match="durable vote"):
        ck.restarted(3, 6, 0, 4)
    with pytest.raises(Violation, match="commit monotonic"):
        ck.restarted(3, 7, 1, 3)


def test_payload_copies() -> None:
    ck = Checker()
    ck.payload_copies(4, 2, 2, "")
    with pytest.raises(Violation, match="payload copies"):
        ck.payload_copies(4, 1, 2, "")


def test_read_index_below_commit_at_issue_fails() -> None:
    ck = Checker()
    ck.read_issued(b"r1", ReadIssue(1, b"k", commit_at_issue=9, write_index=7, issued_at=0))
    with pytest.raises(Violation, match="linearizable read"):
        ck.read_state(1, 8, b"r1")


def test_read_served_from_stale_state_fails() -> None:
    ck = Checker()
    ck.read_issued(b"r1", ReadIssue(1, b"k", commit_at_issue=9, write_index=7, issued_at=0))
    issue = ck.read_state(1, 9, b"r1")
    assert issue is not None
    with pytest.raises(Violation, match="linearizable read"):
        ck.read_served(b"r1", issue, seen_index=5)
    ck.read_issued(b"r2", ReadIssue(1, b"k", commit_at_issue=9, write_index=7, issued_at=0))
    issue = ck.read_state(1, 10, b"r2")
    assert issue is not None
    ck.read_served(b"r2", issue, seen_index=8)


def test_read_state_on_other_node_fails_and_unknown_ignored() -> None:
    ck = Checker()
    assert ck.read_state(1, 3, b"unknown") is None
    ck.read_issued(b"r1", ReadIssue(1, b"k", 0, 0, 0))
    with pytest.raises(Violation, match="read index"):
        ck.read_state(2, 3, b"r1")
