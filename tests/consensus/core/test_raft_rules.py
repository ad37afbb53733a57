"""Unit tests named after the rules of the Raft paper (and the thesis' extensions)."""

from __future__ import annotations

import random

import pytest

from nexus_raft.consensus.core import (
    Accepted,
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Raft,
    Rejected,
    RejectReason,
    Role,
)
from nexus_raft.consensus.core.log import InvariantViolation
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMeta,
    SnapshotRequest,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.errors import ConfigError, RaftUsageError
from tests.consensus.core.harness import Network

CS3 = ConfState(frozenset({1, 2, 3}))


def cluster(n: int = 3, **cfg: int | bool) -> Network:
    net = Network()
    cs = ConfState(frozenset(range(1, n + 1)))
    for i in range(1, n + 1):
        net.add_node(i, cs, **cfg)
    return net


def lone(nid: int = 1, storage: MemoryStorage | None = None, **cfg: int | bool) -> Raft:
    st = storage if storage is not None else MemoryStorage(CS3)
    return Raft(Config(id=nid, **cfg), st, random.Random(nid))  # type: ignore[arg-type]


def drain(r: Raft) -> list[Message]:
    rd = r.ready()
    r.advance(rd)
    return list(rd.messages)


# --- election -------------------------------------------------------------------------


def test_election_safety_one_vote_per_term() -> None:
    r = lone(1, pre_vote=False)
    r.step(VoteRequest(frm=2, to=1, term=1, last_log_index=0, last_log_term=0))
    r.step(VoteRequest(frm=3, to=1, term=1, last_log_index=0, last_log_term=0))
    msgs = drain(r)
    grants = [m for m in msgs if isinstance(m, VoteResponse) and m.granted]
    assert [m.to for m in grants] == [2]
    assert len(msgs) == 2  # every request is answered exactly once
    # The same candidate asking again (a retry) gets the same answer.
    r.step(VoteRequest(frm=2, to=1, term=1, last_log_index=0, last_log_term=0))
    (again,) = drain(r)
    assert isinstance(again, VoteResponse) and again.granted


def test_vote_is_persisted_before_the_response_is_sent() -> None:
    r = lone(1, pre_vote=False)
    r.step(VoteRequest(frm=2, to=1, term=5, last_log_index=0, last_log_term=0))
    rd = r.ready()
    assert rd.hard_state == HardState(term=5, vote=2, commit=0)
    assert any(isinstance(m, VoteResponse) and m.granted for m in rd.messages)


def test_voter_denies_candidate_with_less_up_to_date_log() -> None:
    st = MemoryStorage(CS3)
    st.append([Entry(1, 1), Entry(2, 2)])
    r = lone(1, storage=st, pre_vote=False)
    r.step(VoteRequest(frm=2, to=1, term=3, last_log_index=5, last_log_term=1))
    (resp,) = drain(r)
    assert isinstance(resp, VoteResponse) and not resp.granted and resp.term == 3


def test_election_timeout_is_randomized_within_bounds() -> None:
    seen = set()
    for seed in range(40):
        r = Raft(Config(id=1, election_tick=10), MemoryStorage(CS3), random.Random(seed))
        assert 10 <= r.randomized_election_timeout < 20
        seen.add(r.randomized_election_timeout)
    assert len(seen) > 3


def test_follower_campaigns_after_election_timeout() -> None:
    r = lone(1)
    for _ in range(r.randomized_election_timeout):
        r.tick()
    assert r.role is Role.PRE_CANDIDATE
    assert r.term == 0  # pre-vote does not bump the term


def test_candidate_with_majority_becomes_leader_and_appends_empty_entry() -> None:
    net = cluster()
    net.elect(1)
    assert net.raft(1).role is Role.LEADER
    first = net.nodes[2].storage.entries(1, 2)[0]
    assert first.term == 1 and first.data == b""


def test_candidate_steps_down_on_append_from_leader_of_same_term() -> None:
    r = lone(1, pre_vote=False)
    r.campaign()
    assert r.status().role is Role.CANDIDATE
    r.step(AppendRequest(frm=2, to=1, term=1, prev_index=0, prev_term=0))
    assert r.status().role is Role.FOLLOWER and r.leader_id == 2


def test_leader_lease_ignores_vote_requests_while_leader_alive() -> None:
    r = lone(1)
    r.step(Heartbeat(frm=2, to=1, term=1))
    drain(r)
    r.step(VoteRequest(frm=3, to=1, term=2, last_log_index=9, last_log_term=9))
    (resp,) = drain(r)
    assert isinstance(resp, VoteResponse) and not resp.granted and resp.term == 1
    assert r.term == 1  # the disruptive term was not adopted
    r.step(VoteRequest(frm=3, to=1, term=2, last_log_index=9, last_log_term=9, transfer=True))
    (resp,) = drain(r)
    assert isinstance(resp, VoteResponse) and resp.granted and r.term == 2


def test_stale_term_requests_are_answered_with_current_term() -> None:
    r = lone(1)
    r.step(Heartbeat(frm=2, to=1, term=4))
    drain(r)
    r.step(AppendRequest(frm=3, to=1, term=2, prev_index=0, prev_term=0))
    r.step(Heartbeat(frm=3, to=1, term=2))
    r.step(ReadIndexRequest(frm=3, to=1, term=2, context=b"c"))
    r.step(SnapshotRequest(frm=3, to=1, term=2, snapshot=SnapshotMeta(5, 1, CS3)))
    msgs = drain(r)
    assert [type(m) for m in msgs] == [
        AppendResponse,
        HeartbeatResponse,
        ReadIndexResponse,
        AppendResponse,
    ]
    assert all(m.term == 4 for m in msgs)


# --- log replication --------------------------------------------------------------------


def test_leader_append_only() -> None:
    net = cluster()
    net.elect(1)
    leader = net.raft(1)
    before = net.nodes[1].storage.entries(1, leader.log.last_index() + 1)
    # A conflicting append from a stale leader must never touch the leader's log.
    leader.step(
        AppendRequest(
            frm=2, to=1, term=0, prev_index=0, prev_term=0, entries=(Entry(1, 0, data=b"evil"),)
        )
    )
    net.stabilize()
    after = net.nodes[1].storage.entries(1, len(before) + 1)
    assert after == before


def test_log_matching_rejects_mismatched_prev() -> None:
    st = MemoryStorage(CS3)
    st.append([Entry(1, 1), Entry(2, 1), Entry(3, 2)])
    r = lone(1, storage=st)
    r.step(AppendRequest(frm=2, to=1, term=3, prev_index=3, prev_term=3, entries=(Entry(4, 3),)))
    (resp,) = drain(r)
    assert isinstance(resp, AppendResponse) and resp.reject
    # Hint: the largest index whose term <= 3 is 3 (term 2).
    assert (resp.index, resp.reject_hint, resp.hint_term) == (3, 3, 2)
    assert r.log.last_index() == 3


def test_log_matching_truncates_conflicting_tail() -> None:
    st = MemoryStorage(CS3)
    st.append([Entry(1, 1), Entry(2, 1), Entry(3, 1)])
    r = lone(1, storage=st)
    r.step(
        AppendRequest(
            frm=2, to=1, term=2, prev_index=1, prev_term=1, entries=(Entry(2, 2, data=b"new"),)
        )
    )
    rd = r.ready()
    assert [(e.index, e.term) for e in rd.entries] == [(2, 2)]
    st.append(rd.entries)
    r.advance(rd)
    assert st.last_index() == 2


def test_fast_backoff_uses_conflict_hint() -> None:
    net = cluster(pre_vote=False, check_quorum=False)
    net.elect(1)
    leader = net.raft(1)
    net.groups = [{1}, {2, 3}]
    for i in range(20):
        leader.propose(f"x{i}".encode())
    net.stabilize()
    # 2 leads term 2 with 3's vote and appends; 1 keeps its 20 divergent term-1 entries.
    r2 = net.raft(2)
    r2.campaign()
    net.stabilize()
    assert r2.role is Role.LEADER
    for i in range(20):
        r2.propose(f"y{i}".encode())
    net.stabilize()
    net.groups = None
    # As right after an election, 2 probes 1 from its own last index.
    pr = r2.prs[1]
    pr.become_probe()
    pr.next = r2.log.last_index() + 1
    r2.step(HeartbeatResponse(frm=1, to=2, term=r2.term))
    rejections = 0
    for _ in range(50):
        for m in net.queue:
            if isinstance(m, AppendResponse) and m.reject:
                rejections += 1
        if not net.queue and not any(net.raft(i).has_ready() for i in (1, 2, 3)):
            break
        for i in (1, 2, 3):
            net.process_ready(i)
        net.deliver()
    assert rejections <= 2  # not one round trip per divergent entry
    assert [e.term for e in net.nodes[1].storage.entries(2, 4)] == [2, 2]


def test_commit_only_current_term_entries_by_counting_replicas() -> None:
    net = cluster(pre_vote=False, check_quorum=False)
    net.elect(1)
    net.raft(1).propose(b"old")
    net.process_ready(1)
    net.queue.clear()  # "old" (index 2, term 1) is only on node 1
    net.restart(1)
    leader = net.raft(1)
    leader.campaign()
    assert leader.log.term(2) == 1
    for _ in range(30):
        for i in (1, 2, 3):
            net.process_ready(i)
        net.deliver()
        # The term-1 entry is never committed on its own, only with a term-2 entry.
        assert leader.log.committed != 2
    assert leader.role is Role.LEADER and leader.term == 2
    assert leader.log.committed == 3 and leader.log.term(3) == 2


def test_leader_counts_itself_only_after_persisting() -> None:
    r = lone(1, storage=MemoryStorage(ConfState(frozenset({1}))))
    st = r.log.storage
    assert isinstance(st, MemoryStorage)
    r.campaign()
    rd = r.ready()
    assert r.role is Role.LEADER
    assert r.log.committed == 0 and not rd.committed_entries
    st.append(rd.entries)
    r.advance(rd)
    assert r.log.committed == 1


def test_committed_entries_are_handed_out_only_after_persisted() -> None:
    st = MemoryStorage(CS3)
    r = lone(2, storage=st)
    r.step(
        AppendRequest(
            frm=1,
            to=2,
            term=1,
            prev_index=0,
            prev_term=0,
            commit=1,
            entries=(Entry(1, 1, data=b"a"),),
        )
    )
    rd = r.ready()
    assert rd.entries and not rd.committed_entries  # not durable yet
    st.append(rd.entries)
    r.advance(rd)
    rd = r.ready()
    assert [e.data for e in rd.committed_entries] == [b"a"]


def test_append_below_commit_is_answered_with_commit_index() -> None:
    st = MemoryStorage(CS3)
    st.append([Entry(1, 1), Entry(2, 1)])
    st.set_hard_state(HardState(1, 0, 2))
    r = lone(1, storage=st)
    r.step(
        AppendRequest(
            frm=2, to=1, term=1, prev_index=1, prev_term=1, commit=2, entries=(Entry(2, 1),)
        )
    )
    (resp,) = drain(r)
    assert isinstance(resp, AppendResponse) and not resp.reject and resp.index == 2
    with pytest.raises(InvariantViolation):
        r.log.commit_to(9)  # beyond the log: never


# --- requests --------------------------------------------------------------------------


def test_follower_propose_returns_not_leader_with_leader_id() -> None:
    net = cluster()
    net.elect(1)
    assert net.raft(2).propose(b"x") == Rejected(RejectReason.NOT_LEADER, 1)


def test_propose_too_large_is_rejected() -> None:
    net = Network()
    net.add_node(1, ConfState(frozenset({1})), max_proposal_bytes=4)
    net.elect(1)
    assert net.raft(1).propose(b"12345") == Rejected(RejectReason.TOO_LARGE, 1)
    assert isinstance(net.raft(1).propose(b"1234"), Accepted)


def test_wrong_types_raise_type_error_naming_argument() -> None:
    r = lone(1)
    with pytest.raises(TypeError, match="data"):
        r.propose("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context"):
        r.read_index("ctx")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cc"):
        r.propose_conf_change(b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="m"):
        r.step("msg")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="election_tick"):
        Config(id=1, election_tick="10")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Config(id=1, election_tick=1, heartbeat_tick=1)


def test_ready_protocol_misuse_raises() -> None:
    r = lone(1)
    r.campaign()
    rd = r.ready()
    assert not r.has_ready()  # one Ready outstanding
    with pytest.raises(RaftUsageError):
        r.ready()
    with pytest.raises(RaftUsageError):
        r.advance(type(rd)())
    r.advance(rd)
    with pytest.raises(RaftUsageError):
        r.step(Heartbeat(frm=2, to=9, term=1))


def test_every_request_gets_exactly_one_response() -> None:
    net = cluster()
    net.elect(1)
    leader, follower = net.raft(1), net.raft(2)
    reqs: list[Message] = [
        VoteRequest(frm=3, to=2, term=1, last_log_index=0, last_log_term=0),
        VoteRequest(frm=3, to=2, term=1, last_log_index=0, last_log_term=0, pre_vote=True),
        AppendRequest(frm=1, to=2, term=1, prev_index=7, prev_term=1),
        Heartbeat(frm=1, to=2, term=1),
        ReadIndexRequest(frm=3, to=2, term=1, context=b"r"),
        SnapshotRequest(frm=1, to=2, term=1, snapshot=SnapshotMeta(0, 0, CS3)),
    ]
    for m in reqs:
        follower.step(m)
        msgs = drain(follower)
        assert len(msgs) == 1, m
    leader.step(ReadIndexRequest(frm=2, to=1, term=1, context=b"x"))
    net.stabilize()
    # The leader's answer (after its heartbeat round) reaches node 2 as a ReadState.
    assert [rs.context for rs in net.nodes[2].read_states] == [b"x"]


def test_read_index_requires_quorum_confirmation() -> None:
    net = cluster()
    net.elect(1)
    leader = net.raft(1)
    assert isinstance(leader.read_index(b"r1"), Accepted)
    rd = net.process_ready(1)
    assert rd is not None and not rd.read_states  # heartbeat round first
    net.stabilize()
    assert [rs.context for rs in net.nodes[1].read_states] == [b"r1"]
    assert net.nodes[1].read_states[0].index == leader.log.committed


def test_dropped_reads_are_reported_when_leader_steps_down() -> None:
    net = cluster()
    net.elect(1)
    leader = net.raft(1)
    net.groups = [{1}, {2, 3}]
    leader.read_index(b"r")
    leader.step(Heartbeat(frm=2, to=1, term=leader.term + 1))
    net.process_ready(1)
    assert net.nodes[1].dropped_reads == [b"r"]


def test_transfer_refuses_proposals_and_aborts_after_election_timeout() -> None:
    net = cluster()
    net.elect(1)
    leader = net.raft(1)
    net.groups = [{1, 2}, {3}]
    assert isinstance(leader.transfer_leadership(3), Accepted)
    assert leader.propose(b"x") == Rejected(RejectReason.TRANSFERRING, 1)
    for _ in range(10):
        leader.tick()
    assert leader.status().transferee == 0
    assert isinstance(leader.propose(b"x"), Accepted)


def test_transfer_to_a_learner_or_a_stranger_is_refused_saying_which() -> None:
    net = Network()
    cs = ConfState(frozenset({1, 2, 3}), frozenset({4}))
    for i in (1, 2, 3, 4):
        net.add_node(i, cs)
    net.elect(1)
    leader = net.raft(1)
    learner = leader.transfer_leadership(4)
    stranger = leader.transfer_leadership(9)
    assert learner == stranger == Rejected(RejectReason.NOT_MEMBER, 1)
    assert isinstance(learner, Rejected) and isinstance(stranger, Rejected)
    assert learner.detail == "member 4 is a learner: only a full voter can lead"
    assert stranger.detail == "node 9 is not a member"


def test_report_unreachable_and_snapshot_move_progress_to_probe() -> None:
    net = cluster()
    net.elect(1)
    leader = net.raft(1)
    leader.report_unreachable(2)
    assert leader.status().progress[2].state.value == "probe"
    leader.prs[3].become_snapshot(5)
    leader.report_snapshot(3, False)
    pr = leader.prs[3]
    assert pr.state.value == "probe" and pr.is_paused()


def test_restart_restores_term_vote_commit_and_conf() -> None:
    net = cluster()
    net.elect(1)
    net.raft(1).propose(b"a")
    net.stabilize()
    # The followers learn commit 2 with the leader's next tick (no commit-only append).
    net.tick(1)
    net.stabilize()
    net.restart(2)
    st = net.raft(2).status()
    assert (st.term, st.vote, st.commit) == (1, 1, 2)
    assert st.conf_state == ConfState(frozenset({1, 2, 3}))
