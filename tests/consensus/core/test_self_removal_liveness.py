"""A leader of two voters removes itself and loses leadership before the removal commits.

Members {1, 2}. Leader 1 appends REMOVE 1 (its latest configuration is then
{2}) while 2 is cut off, so 2 never gets the entry. 1 then stops leading
(check-quorum, or a crash). 2 campaigns and 1 refuses: 2's log lacks the
entry. Before the fix 1 never campaigned either (it is no voter of its own
latest configuration): no leader ever again. Raft thesis §4.2.2: a server
whose removal is not committed still campaigns, under its latest
configuration and without its own vote (``RaftState.promotable``). Found by
the core simulator once it let a leader remove itself from two voters
(seeds 1 and 160).
"""

from __future__ import annotations

import random

from nexus_raft.consensus.core import (
    Accepted,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Raft,
    Role,
)
from nexus_raft.consensus.core.messages import NONE

from .harness import Network

REMOVE_1 = ConfChange(ConfChangeType.REMOVE, 1)
ELECTION = 10


def two_voters_leader_appended_own_removal() -> tuple[Network, int]:
    """Leader 1 of {1, 2} has appended REMOVE 1, which 2 lacks; returns (net, its index)."""
    net = Network()
    cs = ConfState(frozenset({1, 2}))
    for nid in (1, 2):
        net.add_node(nid, cs, election_tick=ELECTION, pre_vote=True, check_quorum=True)
    net.elect(1)
    leader = net.raft(1)
    leader.tick()  # a heartbeat round: 2 learns the commit index
    net.stabilize()
    assert leader.log.committed == 1
    net.groups = [{1}, {2}]
    out = leader.propose_conf_change(REMOVE_1)
    assert isinstance(out, Accepted), out
    net.stabilize()
    assert leader.conf_state.voters == {2}
    assert net.nodes[2].storage.last_index() < out.index, "2 lacks the removal"
    return net, out.index


def run_until_leader_commits(net: Network, nid: int, rounds: int = 40 * ELECTION) -> None:
    """Tick every node until ``nid`` leads and has committed a fresh proposal."""
    marker = 0
    for _ in range(rounds):
        for n in sorted(net.nodes):
            net.tick(n)
        net.stabilize()
        r = net.raft(nid)
        if r.role is not Role.LEADER:
            continue
        if marker and r.log.committed >= marker:
            return
        if not marker:
            out = r.propose(b"after")
            if isinstance(out, Accepted):
                marker = out.index
    raise AssertionError(
        f"no leader committed within {rounds} rounds: {[net.raft(n) for n in sorted(net.nodes)]}"
    )


def assert_removal_committed(net: Network, index: int) -> None:
    box = net.nodes[2]
    assert box.raft.conf_state.voters == {2}
    assert any(e.index == index and e.type is EntryType.CONF_CHANGE for e in box.applied)


def test_leader_removing_itself_from_two_voters_loses_quorum_then_campaigns_again() -> None:
    net, index = two_voters_leader_appended_own_removal()
    leader = net.raft(1)
    for _ in range(2 * ELECTION):
        leader.tick()
        net.stabilize()
    assert leader.role is Role.FOLLOWER, "check-quorum: 2 is cut off"
    net.groups = None
    # 1 must campaign under {2} (2 votes for it: 1's log is ahead), commit its
    # removal and step down; then 2 leads alone.
    run_until_leader_commits(net, 2)
    assert_removal_committed(net, index)
    assert net.raft(1).role is Role.FOLLOWER
    assert not net.raft(1).promotable(), "its removal is committed: it stops campaigning"


def test_leader_removing_itself_from_two_voters_restarts_then_campaigns_again() -> None:
    net, index = two_voters_leader_appended_own_removal()
    net.restart(1)
    assert net.raft(1).conf_state.voters == {2}
    assert net.raft(1).own_removal_pending()
    net.groups = None
    run_until_leader_commits(net, 2)
    assert_removal_committed(net, index)


def test_witness_whose_removal_is_pending_never_campaigns() -> None:
    """Only a full voter's pending removal lets it campaign: a witness never leads as a full one.

    (A leader stops replicating to a member once it appends the member's
    removal, so only a log written otherwise holds a witness's own removal.)
    """
    cs = ConfState(frozenset({1, 2, 3, 4}), witnesses=frozenset({4}))
    storage = MemoryStorage(cs)
    remove_4 = ConfChange(ConfChangeType.REMOVE, 4).encode()
    storage.append(
        [Entry(1, 1, EntryType.NORMAL, None), Entry(2, 1, EntryType.CONF_CHANGE, remove_4)]
    )
    storage.set_hard_state(HardState(1, NONE, 1))
    w = Raft(Config(id=4, election_tick=ELECTION), storage, random.Random(4))
    assert w.conf_state.voters == {1, 2, 3}
    assert not w.own_removal_pending()
    assert not w.promotable()
    for _ in range(3 * ELECTION):
        w.tick()
    assert w.role is Role.FOLLOWER and not w.msgs, "it never campaigns"
