"""The guard's rule for senders outside the configuration (a leader not known yet).

A lagging member hears a stranger only when it knows no leader, and only
with proof of membership from the log (an entry adding the sender, or a
snapshot whose configuration holds it), or with the sender's identity proven
by mutual TLS; other appends and heartbeats get an answer that steps nothing
and moves the leader's probe back toward what the member lacks. Votes,
TimeoutNow and reads from strangers stay refused. The whole-node scenario
is tests/sim_node/test_lagging_member.py.
"""

from __future__ import annotations

import dataclasses

from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    SnapshotMeta,
    SnapshotRequest,
    VoteRequest,
)
from nexus_raft.consensus.node import guard

CONF = ConfState(frozenset({1, 2, 3}))
STRANGER = 4


def member(nid: int) -> bool:
    return nid in CONF.voters


def _adds(index: int, nid: int, kind: ConfChangeType = ConfChangeType.ADD_VOTER) -> Entry:
    return Entry(index, 5, EntryType.CONF_CHANGE, ConfChange(kind, nid, b"h:1").encode())


def _append(**kw: object) -> AppendRequest:
    fields: dict[object, object] = dict(frm=STRANGER, to=3, term=6, prev_index=10, prev_term=4)
    fields.update(kw)
    return AppendRequest(**fields)  # type: ignore[arg-type]


def _check(m: AppendRequest | Heartbeat, leader: int, **kw: bool) -> guard.Refusal | None:
    return guard.append_refusal(m, 5, member, leader=leader, **kw)


def test_a_stranger_is_refused_while_a_leader_is_known() -> None:
    proven = _append(entries=(Entry(11, 5, data=b"x"), _adds(12, STRANGER)))
    for m in (proven, _append(), Heartbeat(frm=STRANGER, to=3, term=6)):
        refused = _check(m, leader=1)
        assert refused is not None and refused[0] == "not-member"
        assert guard.append_refusal(m, 5, member) is not None  # no leader given: strict


def test_the_leader_this_node_follows_is_heard_before_its_configuration_entry_is_appended() -> (
    None
):
    # A proof stepped in this term made the stranger this node's leader, but the
    # append was rejected on the log check: its next messages carry no proof.
    for m in (_append(), _append(entries=(Entry(11, 5, data=b"x"),)),
              Heartbeat(frm=STRANGER, to=3, term=6)):
        assert _check(m, leader=STRANGER) is None


def test_with_no_leader_an_append_adding_its_sender_is_checked_like_a_members() -> None:
    for kind in (ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_WITNESS):
        m = _append(entries=(Entry(11, 5, data=b"x"), _adds(12, STRANGER, kind)), commit=12)
        assert guard.proves_membership(m)
        assert _check(m, leader=NONE) is None
    # Proven, but malformed: the shape rules still apply.
    bad = _append(entries=(_adds(11, STRANGER), Entry(12, 7, data=b"x")))
    refused = _check(bad, leader=NONE)
    assert refused is not None and refused[0] == "malformed"


def test_with_no_leader_an_append_without_proof_is_answered_not_stepped() -> None:
    others = (
        _append(),  # an empty probe
        _append(entries=(Entry(11, 5, data=b"x"),)),  # a forged write
        _append(entries=(_adds(11, 9),)),  # adds someone else
        _append(entries=(_adds(11, STRANGER, ConfChangeType.REMOVE),)),
        Heartbeat(frm=STRANGER, to=3, term=6),
    )
    for m in others:
        refused = _check(m, leader=NONE)
        assert refused is not None and refused[0] == guard.UNPROVEN, m
    # The term bounds come first: an absurd term is refused, never answered.
    refused = _check(_append(term=2**64 - 1), leader=NONE)
    assert refused is not None and refused[0] == "term-bound"


def test_with_mutual_tls_no_proof_is_needed_once_no_leader_is_known() -> None:
    for m in (_append(entries=(Entry(11, 5, data=b"x"),)), Heartbeat(frm=STRANGER, to=3, term=6)):
        assert _check(m, leader=NONE, authenticated=True) is None
        refused = _check(m, leader=1, authenticated=True)
        assert refused is not None and refused[0] == "not-member"


def test_votes_timeout_now_and_reads_from_a_stranger_stay_refused() -> None:
    vote = VoteRequest(frm=STRANGER, to=3, term=6, last_log_index=10, last_log_term=5)
    assert guard.vote_refusal(vote, 5, member) is not None
    assert guard.timeout_now_refusal(STRANGER, 5, 5, STRANGER, member, me=3) is not None
    assert guard.sender_refusal(STRANGER, member, me=3, joining_ok=False) is not None


def test_a_strangers_snapshot_needs_its_sender_in_the_configuration() -> None:
    holds = SnapshotMeta(20, 5, ConfState(frozenset({1, 2, 3, STRANGER})))
    snap = SnapshotRequest(frm=STRANGER, to=3, term=6, snapshot=holds)
    assert guard.snapshot_refusal(snap, 5, member, leader=NONE) is None
    refused = guard.snapshot_refusal(snap, 5, member, leader=1)
    assert refused is not None and refused[0] == "not-member"
    assert guard.snapshot_refusal(snap, 5, member) is not None  # strict without a leader given
    lacks = dataclasses.replace(snap, snapshot=dataclasses.replace(holds, conf_state=CONF))
    refused = guard.snapshot_refusal(lacks, 5, member, leader=NONE)
    assert refused is not None and refused[0] == "not-member"
    refused = guard.snapshot_refusal(lacks, 5, member, leader=NONE, authenticated=True)
    assert refused is not None and "does not contain its sender" in refused[1]


def test_the_answer_walks_the_leaders_probe_back_one_stage_per_round_trip() -> None:
    last, committed = 40, 30
    # Beyond the log's end: back to the last index.
    a = guard.stranger_answer(_append(prev_index=90), 5, last, committed)
    assert isinstance(a, AppendResponse) and a.reject and a.index == 90
    assert a.reject_hint == 40 and a.hint_term == 0 and a.term == 6 and (a.frm, a.to) == (3, 4)
    # Within the log: back to the commit index (an uncommitted tail may differ).
    a = guard.stranger_answer(_append(prev_index=40), 5, last, committed)
    assert isinstance(a, AppendResponse) and (a.index, a.reject_hint) == (40, 30)
    # At or below the commit index: back to the start (the leader's first index or snapshot).
    a = guard.stranger_answer(_append(prev_index=30), 5, last, committed)
    assert isinstance(a, AppendResponse) and (a.index, a.reject_hint) == (30, 0)
    # From index 1 nothing moves it: a rejection it does not act on at once.
    sent = tuple(Entry(i, 5, data=b"x") for i in (1, 2, 3))
    a = guard.stranger_answer(_append(prev_index=0, prev_term=0, entries=sent), 5, last, committed)
    assert isinstance(a, AppendResponse) and a.reject and a.index == 3
    # A leader of an older term learns this node's term (it steps down).
    a = guard.stranger_answer(_append(term=4), 5, last, committed)
    assert a.term == 5
    beat = guard.stranger_answer(Heartbeat(frm=4, to=3, term=6, context=b"read"), 5, last, 0)
    assert isinstance(beat, HeartbeatResponse) and beat.context == b"" and beat.term == 6


def test_a_node_not_in_its_own_configuration_votes_for_a_candidate_it_does_not_know() -> None:
    # Node 5, being added, has no configuration yet (it knows no member): voters
    # {1, 5} may need its vote.
    def empty(nid: int) -> bool:
        return False

    vote = VoteRequest(frm=1, to=5, term=6, last_log_index=10, last_log_term=5)
    for pre in (False, True):
        assert guard.vote_refusal(dataclasses.replace(vote, pre_vote=pre), 5, empty) is None
    # A member in its own configuration still refuses a stranger's vote request.
    assert guard.vote_refusal(dataclasses.replace(vote, frm=STRANGER, to=3), 5, member)
    # The term bound and the shape rules still apply; TimeoutNow stays refused.
    refused = guard.vote_refusal(dataclasses.replace(vote, term=2**64 - 1), 5, empty)
    assert refused is not None and refused[0] == "term-bound"
    refused = guard.vote_refusal(dataclasses.replace(vote, last_log_term=7), 5, empty)
    assert refused is not None and refused[0] == "malformed"
    assert guard.timeout_now_refusal(1, 5, 5, NONE, empty, me=5) is not None
    # Its transfer votes get no lease bypass (a joining node's sender is no full voter).
    assert guard.transfer_refusal(dataclasses.replace(vote, transfer=True), 5,
                                  ConfState(frozenset())) is not None
