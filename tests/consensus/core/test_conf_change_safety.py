"""A new leader accepts no membership change until an entry of its own term commits.

Single-server changes are safe only between configurations that share a
majority. A leader that appends a change before it has committed an entry of
its term may start from a configuration that an uncommitted change of an
earlier term (still in other members' logs) does not know about: the two
changes then differ by two members and their majorities need not overlap.
This is the bug Diego Ongaro reported on raft-dev in 2015; the fix (his, and
what this core does) is to refuse the change until the leader's first entry
commits. The refusal is explicit (``RejectReason.LEADER_NOT_READY``), so the
node turns it into an error the caller can retry.
"""

from __future__ import annotations

from nexus_raft.consensus.core import (
    Accepted,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    Raft,
    Rejected,
    Role,
)

from .harness import Network

ADD_5 = ConfChange(ConfChangeType.ADD_VOTER, 5)
REMOVE_4 = ConfChange(ConfChangeType.REMOVE, 4)


def committed_views(net: Network) -> dict[int, dict[int, Entry]]:
    """Per index, the committed entry each node holds (from its stable log)."""
    out: dict[int, dict[int, Entry]] = {}
    for nid, box in net.nodes.items():
        st = box.storage
        commit = min(box.raft.log.committed, st.last_index())
        for e in st.entries(st.first_index(), commit + 1):
            out.setdefault(e.index, {})[nid] = e
    return out


def assert_state_machine_safety(net: Network) -> None:
    """No two nodes ever commit different entries at the same index."""
    for index, views in committed_views(net).items():
        kinds = {(e.term, e.type, e.data) for e in views.values()}
        assert len(kinds) == 1, f"index {index} committed differently: {views}"


def five_nodes() -> Network:
    net = Network()
    cs = ConfState(frozenset({1, 2, 3, 4}))
    for nid in (1, 2, 3, 4, 5):  # 5 starts outside the configuration
        net.add_node(nid, cs, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.tick(1)  # a heartbeat tells everyone the commit index
    net.stabilize()
    assert all(net.raft(n).log.committed == 1 for n in (1, 2, 3, 4))
    return net


def win_election(net: Network, nid: int, voters: list[int]) -> Raft:
    """Elect ``nid`` with the votes of ``voters`` and stop before its first append leaves."""
    r = net.raft(nid)
    r.campaign()
    net.process_ready(nid)
    net.deliver(voters)
    for v in voters:
        net.process_ready(v)
    net.deliver([nid])
    assert r.role is Role.LEADER
    return r


def test_conf_change_refused_before_leaders_first_entry_commits() -> None:
    """The issue's scenario, members {1,2,3,4} (see the module docstring).

    1 appends C1 = add 5 and only 5 gets it; 2 wins term 2 with 2, 3, 4 and
    4 misses 2's first entry; 2 must refuse C2 = remove 4 now. Without the
    refusal 2 commits its entry and C2 on {2, 3} (a majority of {1, 2, 3}),
    then 1 wins under C1 with 1, 4, 5 and commits other entries at the same
    indexes.
    """
    net = five_nodes()
    base = net.raft(1).log.last_index()
    # C1 reaches 5 only.
    net.groups = [{1, 5}, {2, 3, 4}]
    c1 = net.raft(1).propose_conf_change(ADD_5)
    assert isinstance(c1, Accepted)
    net.stabilize()
    assert net.nodes[5].storage.last_index() == c1.index
    assert net.nodes[2].storage.last_index() == base
    # 2 wins term 2 with 2, 3, 4 (its configuration is still {1, 2, 3, 4}),
    # then its link to 4 breaks: 4 misses 2's first entry.
    leader = win_election(net, 2, [3, 4])
    net.cut |= {(2, 4), (4, 2)}
    net.stabilize([2, 3])
    assert leader.log.committed == base  # {2, 3} is no majority of four

    c2 = leader.propose_conf_change(REMOVE_4)
    # Accepted, C2 would commit on {2, 3} now; refused, nothing commits.
    net.stabilize([2, 3])
    assert_state_machine_safety(net)
    # 1 restarts and campaigns under C1 with 1, 4, 5.
    net.restart(1)
    net.groups = [{1, 4, 5}, {2, 3}]
    net.cut.clear()
    for _ in range(3):
        if net.raft(1).role is Role.LEADER:
            break
        net.raft(1).campaign()
        net.stabilize([1, 4, 5])
    assert net.raft(1).role is Role.LEADER
    net.raft(1).propose(b"x")
    net.stabilize([1, 4, 5])
    assert_state_machine_safety(net)
    assert isinstance(c2, Rejected) and c2.reason.name == "LEADER_NOT_READY", c2


def test_conf_change_accepted_once_leaders_first_entry_commits() -> None:
    net = five_nodes()
    leader = win_election(net, 2, [3, 4])  # its first entry is not committed yet
    out = leader.propose_conf_change(REMOVE_4)
    assert isinstance(out, Rejected) and out.reason.name == "LEADER_NOT_READY", out
    assert out.leader_id == 2
    net.stabilize()
    assert leader.role is Role.LEADER
    out = leader.propose_conf_change(REMOVE_4)
    assert isinstance(out, Accepted)
