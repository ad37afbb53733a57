"""A witness leader skips members it cannot supply instead of giving up leading.

2 full voters + 1 witness + a learner (the core simulator's seed 57). The
witness holds no payload for entries both full voters held (the payload
floor), and the learner missed them. Full voter 2 is cut off while 1 commits
more entries with the witness's payloads; then 1 dies. Only the witness can
bring 2 up to date, so it campaigns and leads. Before the fix, its first
append to the learner met an entry without a payload and it stepped down for
good ("it holds no payload for entry ..."), though 2 needs only entries it
holds: 2 got one append's worth, and then no leader ever again (the witness
refuses 2's vote, and it may not campaign again until it hears a leader).
Now it leaves the learner (and any full voter it cannot supply) alone, hands
over to 2, and the learner catches up from 2.
"""

from __future__ import annotations

from collections.abc import Callable

from nexus_raft.consensus.core import Accepted, ConfState, Role

from .harness import Network

ELECTION = 10


def witness_must_lead(*, five: bool = False, compact_witness: bool = False) -> Network:
    """Leader 1 dead, 2 behind, witness 3 holding payloads for every entry 2 lacks.

    Member 4 missed entries whose payloads the witness does not hold. By
    default the configuration is {1, 2, 3w} with learner 4; with ``five`` it
    is {1, 2, 3w, 4, 5} (4 a full voter) and 5 dies with 1. With
    ``compact_witness`` the witness has compacted its log up to the entries
    both full voters hold, so the learner, whose log is empty, needs a snapshot.
    """
    net = Network()
    full = {1, 2, 4, 5} if five else {1, 2}
    cs = ConfState(
        frozenset(full | {3}),
        learners=frozenset() if five else frozenset({4}),
        witnesses=frozenset({3}),
    )
    for nid in sorted(full | {4}):
        # Five voters: no check-quorum, so that 1 keeps appending with the
        # witness alone (nothing commits) while 2, 4 and 5 are away.
        net.add_node(nid, cs, election_tick=ELECTION, check_quorum=not five)
    # One entry per append and one in flight: the witness cannot bring 2 up
    # to date with the single append it sends before it (formerly) gave up.
    net.add_node(3, cs, election_tick=ELECTION, max_entries_per_msg=1, max_inflight_msgs=1)
    net.elect(1)
    leader = net.raft(1)
    # Phase 1: 4 is away; the full voters hold these entries, the witness
    # gets metadata only (every full voter is healthy) or drops the payloads.
    net.groups = [full - {4} | {3}, {4}]
    for i in range(5):
        leader.propose(f"a{i}".encode())
        leader.tick()
        net.stabilize()
    for _ in range(3):  # heartbeats: the commit index and the payload floor go round
        leader.tick()
        net.stabilize()
    floor_at = leader.log.committed
    assert net.raft(2).log.committed == floor_at
    # Phase 2: 2 is away (5 too); after an election timeout the witness takes
    # payloads. With three members, 1's entries commit with 1's and the
    # witness's copies; with five, nothing commits.
    net.groups = [{1, 3}] + [{n} for n in sorted(full - {1})]
    for i in range(6):
        leader.propose(f"b{i}".encode())
        for _ in range(3):
            leader.tick()
            net.stabilize()
    assert leader.prs[3].payload_mode
    if not five:
        assert leader.log.committed > net.nodes[2].storage.last_index()
    w = net.nodes[3].storage
    assert any(e.data is None for e in w.entries(w.first_index(), floor_at + 1) if e.data != b"")
    assert all(e.data is not None for e in w.entries(floor_at + 1, w.last_index() + 1))
    if compact_witness:
        w.create_snapshot(floor_at)
        w.compact(floor_at)
        assert net.nodes[4].storage.last_index() < w.first_index() - 1
    # 1 (and 5) die; 2 and 4 come back.
    net.queue = [m for m in net.queue if m.to in (2, 3, 4) and m.frm in (2, 3, 4)]
    net.groups = [{2, 3, 4}, {1}, {5}]
    return net


def run_until(
    net: Network, ids: list[int], cond: Callable[[], object], rounds: int = 600
) -> list[str]:
    """Tick ``ids`` and let them talk until ``cond()`` holds; returns what happened."""
    out: list[str] = []
    for _ in range(rounds):
        if cond():
            return out
        for nid in ids:
            net.tick(nid)
        out.extend(net.stabilize(ids))
    raise AssertionError(f"not reached in {rounds} rounds: {[net.raft(n) for n in ids]}")


def test_witness_leader_skips_learner_missing_dropped_payloads_and_hands_over() -> None:
    net = witness_must_lead()
    ids = [2, 3, 4]
    seen = run_until(net, ids, lambda: net.raft(2).role is Role.LEADER)
    assert "> 3 ready" in seen and "  soft: leader=3 role=leader" in seen, "the witness led"
    leader = net.raft(2)
    out = leader.propose(b"after")
    assert isinstance(out, Accepted)
    applied = net.nodes[4].applied
    run_until(net, ids, lambda: applied and applied[-1].index >= out.index)
    # The learner applied every entry, payloads included, from the full leader.
    assert [e.index for e in applied] == list(range(1, out.index + 1))
    assert all(e.data is not None for e in applied)


def test_witness_leader_skips_learner_needing_a_snapshot_and_hands_over() -> None:
    """The core simulator's seed 102 ({2, 15, 17w} + learner 18): the witness led
    and at once stepped down for good ("a follower needs a snapshot") because
    the learner's log was empty, though full voter 15 needed only entries the
    witness held. (The removal of leader 2 that made that seed need the witness
    is refused today, #10 item 3; here the old leader simply dies.)"""
    net = witness_must_lead(compact_witness=True)
    ids = [2, 3, 4]
    seen = run_until(net, ids, lambda: net.raft(2).role is Role.LEADER)
    assert "  soft: leader=3 role=leader" in seen, "the witness led"
    out = net.raft(2).propose(b"after")
    assert isinstance(out, Accepted)
    run_until(net, ids, lambda: net.raft(4).log.committed >= out.index)


def test_witness_leader_skips_full_voter_missing_dropped_payloads_and_hands_over() -> None:
    """Five voters, 1 and 5 down: 4 missed entries the witness dropped, 2 lacks only
    entries the witness holds. Neither 2 nor 4 can win without the witness's vote,
    so the witness must lead, skip 4, bring 2 up to date and hand over."""
    net = witness_must_lead(five=True)
    ids = [2, 3, 4]
    seen = run_until(net, ids, lambda: net.raft(2).role is Role.LEADER)
    assert "  soft: leader=3 role=leader" in seen, "the witness led"
    out = net.raft(2).propose(b"after")
    assert isinstance(out, Accepted)
    run_until(net, ids, lambda: net.raft(4).log.committed >= out.index)


def test_witness_leader_skipping_every_live_full_voter_waits_for_one_it_can_supply() -> None:
    """Five voters: 2 and 4 both missed entries the witness dropped; 1 and 5 are down.

    Led anyway (an explicit campaign), the witness can serve neither 2 nor 4:
    it skips both and keeps leading (it gives up only once every other full
    voter proved unsuppliable). When 5, which holds everything, comes back,
    the witness brings it to its end and hands over; 5 then catches 2 and 4 up.
    """
    net = Network()
    cs = ConfState(frozenset({1, 2, 3, 4, 5}), witnesses=frozenset({3}))
    for nid in (1, 2, 3, 4, 5):
        net.add_node(nid, cs, election_tick=ELECTION)
    net.elect(1)
    leader = net.raft(1)
    net.groups = [{1, 3, 5}, {2}, {4}]
    for i in range(5):
        leader.propose(f"a{i}".encode())
        leader.tick()
        net.stabilize()
    for _ in range(3):
        leader.tick()
        net.stabilize()
    w = net.nodes[3].storage
    assert any(e.data is None for e in w.entries(2, leader.log.committed + 1))
    net.queue = []
    net.groups = [{2, 3, 4}, {1}, {5}]
    for _ in range(2 * ELECTION):  # the leases end; 2 and 4 campaign in vain
        for nid in (2, 4):
            net.tick(nid)
        net.stabilize([2, 3, 4])
    witness = net.raft(3)
    assert witness.role is Role.FOLLOWER
    witness.campaign()
    net.stabilize([2, 3, 4])
    assert witness.role is Role.LEADER
    assert witness.prs[2].unsupplied and witness.prs[4].unsupplied
    net.groups = [{2, 3, 4, 5}, {1}]
    ids = [2, 3, 4, 5]
    run_until(net, ids, lambda: net.raft(5).role is Role.LEADER)
    out = net.raft(5).propose(b"after")
    assert isinstance(out, Accepted)
    run_until(net, ids, lambda: all(net.raft(n).log.committed >= out.index for n in (2, 4)))
