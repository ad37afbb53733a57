"""The node's boundary checks on peer requests (consensus/node/guard.py).

Two kinds of tests: the rules one by one (what a forged message looks like),
and the seeded cluster simulator run with the checks in front of every core,
showing that correct peers are never refused for their shape or terms, and
that the clusters stay live and safe with the checks filtering.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterator

import pytest

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    ConfState,
    Entry,
    Heartbeat,
    Message,
    ReadIndexRequest,
    SnapshotMeta,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.node import guard
from tests.sim.runner import run_seed

CONF = ConfState(frozenset({1, 2, 3}), frozenset({4}), frozenset({3}))


def member(nid: int) -> bool:
    return nid in CONF.voters or nid in CONF.learners


def _append(**kw: object) -> AppendRequest:
    fields: dict[object, object] = dict(frm=1, to=2, term=5, prev_index=10, prev_term=4)
    fields.update(kw)
    return AppendRequest(**fields)  # type: ignore[arg-type]


def _e(index: int, term: int) -> Entry:
    return Entry(index, term, data=b"x")


# --- the rules -------------------------------------------------------------------------


def test_terms_beyond_the_bounds_are_refused() -> None:
    assert guard.term_refusal(2**63, 5) is not None  # above int64
    assert guard.term_refusal(2**64 - 1, 5) is not None
    assert guard.term_refusal(5 + 2**32 + 1, 5) is not None
    assert guard.term_refusal(5 + 2**32, 5) is None
    assert guard.term_refusal(6, 5) is None and guard.term_refusal(1, 5) is None


def test_senders_outside_the_configuration_are_refused() -> None:
    for sender in (1, 3, 4):  # voter, witness, learner
        assert guard.sender_refusal(sender, member, me=2, joining_ok=False) is None
    refused = guard.sender_refusal(99, member, me=2, joining_ok=True)
    assert refused is not None and refused[0] == "not-member"
    # A node not in its own configuration yet (being added) accepts its leader.
    assert guard.sender_refusal(99, member, me=7, joining_ok=True) is None
    assert guard.sender_refusal(99, member, me=7, joining_ok=False) is not None


def test_vote_rules() -> None:
    vote = VoteRequest(frm=1, to=2, term=6, last_log_index=10, last_log_term=5)
    assert guard.vote_refusal(vote, 5, member) is None
    assert guard.vote_refusal(dataclasses.replace(vote, frm=99), 5, member) is not None
    assert guard.vote_refusal(dataclasses.replace(vote, last_log_term=7), 5, member) is not None
    assert guard.vote_refusal(dataclasses.replace(vote, term=2**63), 5, member) is not None
    transfer = dataclasses.replace(vote, transfer=True)
    assert guard.transfer_refusal(transfer, 5, CONF) is None  # the next term, from a voter
    assert guard.transfer_refusal(dataclasses.replace(transfer, term=5), 5, CONF) is None
    assert guard.transfer_refusal(dataclasses.replace(transfer, term=105), 5, CONF) is not None
    assert guard.transfer_refusal(dataclasses.replace(transfer, frm=3), 5, CONF) is not None
    assert guard.transfer_refusal(vote, 5, CONF) is None


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"prev_term": 6}, "prev term 6 above"),
        ({"entries": (_e(11, 6),)}, "above the message term"),
        ({"entries": (_e(11, 4), _e(12, 3))}, "below the one before"),
        ({"entries": (_e(11, 3),)}, "below the one before"),  # below prev_term
        ({"entries": (_e(12, 5),)}, "where 11 should follow"),
        ({"entries": (_e(11, 5), _e(11, 5))}, "where 12 should follow"),
        ({"entries": (_e(11, 5),), "commit": 12}, "beyond the last entry sent"),
        ({"commit": 11}, "beyond the last entry sent"),
        ({"frm": 99, "entries": (_e(11, 5),)}, "not a member"),
        ({"term": 2**64 - 1}, "above the largest term"),
    ],
)
def test_appends_a_correct_leader_never_sends_are_refused(
    fields: dict[str, object], why: str
) -> None:
    refused = guard.append_refusal(_append(**fields), 5, member)
    assert refused is not None and why in refused[1]


def test_correct_appends_and_heartbeats_pass() -> None:
    ok = _append(entries=(_e(11, 4), _e(12, 5)), commit=12)
    assert guard.append_refusal(ok, 5, member) is None
    assert guard.append_refusal(_append(commit=10), 5, member) is None
    beat = Heartbeat(frm=1, to=2, term=5, commit=10**6)
    assert guard.append_refusal(beat, 5, member) is None
    assert guard.append_refusal(dataclasses.replace(beat, frm=99), 5, member) is not None
    assert guard.append_refusal(dataclasses.replace(beat, term=2**63), 5, member) is not None


def test_snapshot_rules() -> None:
    meta = SnapshotMeta(index=20, term=5, conf_state=CONF)
    snap = SnapshotRequest(frm=1, to=2, term=6, snapshot=meta)
    assert guard.snapshot_refusal(snap, 5, member) is None
    assert guard.snapshot_refusal(dataclasses.replace(snap, frm=99), 5, member) is not None
    no_sender = dataclasses.replace(meta, conf_state=ConfState(frozenset({2, 3})))
    refused = guard.snapshot_refusal(dataclasses.replace(snap, snapshot=no_sender), 5, member)
    assert refused is not None and "does not contain its sender" in refused[1]
    newer = dataclasses.replace(meta, term=7)
    assert guard.snapshot_refusal(dataclasses.replace(snap, snapshot=newer), 5, member)
    assert guard.snapshot_refusal(dataclasses.replace(snap, term=2**63), 5, member)


def test_timeout_now_only_from_the_current_leader_in_the_current_term() -> None:
    assert guard.timeout_now_refusal(1, 5, 5, 1, member, me=2) is None
    assert guard.timeout_now_refusal(3, 5, 5, 1, member, me=2) is not None  # not the leader
    assert guard.timeout_now_refusal(1, 6, 5, 1, member, me=2) is not None  # another term
    assert guard.timeout_now_refusal(1, 5, 5, 0, member, me=2) is not None  # no leader known
    assert guard.timeout_now_refusal(99, 5, 5, 99, member, me=2) is not None


# --- the simulator with the checks in front of every core --------------------------------


def _check(raft: Raft, m: Message) -> tuple[guard.Refusal | None, Message]:
    is_member = raft.is_peer_member
    if isinstance(m, VoteRequest):
        refused = guard.vote_refusal(m, raft.term, is_member)
        if refused is None and guard.transfer_refusal(m, raft.term, raft.conf_state):
            m = dataclasses.replace(m, transfer=False)
        return refused, m
    if isinstance(m, (AppendRequest, Heartbeat)):
        return guard.append_refusal(m, raft.term, is_member), m
    if isinstance(m, SnapshotRequest):
        return guard.snapshot_refusal(m, raft.term, is_member), m
    if isinstance(m, TimeoutNow):
        refused = guard.timeout_now_refusal(
            m.frm, m.term, raft.term, raft.leader_id, is_member, me=raft.id
        )
        return refused, m
    if isinstance(m, ReadIndexRequest):
        refused = guard.sender_refusal(
            m.frm, is_member, me=raft.id, joining_ok=False
        ) or guard.term_refusal(m.term, raft.term)
        return refused, m
    return None, m


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[tuple[str, str]]]:
    """Every core steps only what the node's boundary would let through."""
    refusals: collections.Counter[tuple[str, str]] = collections.Counter()
    step = Raft.step

    def guarded_step(self: Raft, m: Message) -> None:
        refused, m = _check(self, m)
        if refused is not None:
            refusals[(type(m).__name__, refused[0])] += 1
            return
        step(self, m)

    monkeypatch.setattr(Raft, "step", guarded_step)
    logger = logging.getLogger("nexus_raft")
    level = logger.level
    try:
        yield refusals
    finally:
        logger.setLevel(level)  # the simulator quiets the package's logger


def test_correct_peers_pass_the_checks_in_40_simulated_clusters(
    guarded: collections.Counter[tuple[str, str]],
) -> None:
    """Partitions, loss, duplicates, crashes, membership churn, witnesses,
    transfers: no correct message is refused for its shape or its term, and
    every seed stays safe and live with the checks filtering."""
    violations = [r for r in (run_seed(seed) for seed in range(40)) if r.violation is not None]
    assert not violations, violations[0].violation
    kinds = {kind for _, kind in guarded}
    # Only stale views are refused: a sender a lagging member does not know
    # yet, or a TimeoutNow that arrives after its term ended.
    assert kinds <= {"not-member", "timeout-now"}, guarded
