"""The two-copies promise: every committed entry's payload is durable on two members.

A witness acknowledges entries it holds without payloads, so the quorum
alone does not prove two payload copies; the leader's payload rule, the
witness's payload floor and the membership checks do. These tests drive the
core into the states the issue found and check the copies directly.
"""

from __future__ import annotations

from nexus_raft.consensus.core import (
    Accepted,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Rejected,
)

from .harness import Network


def cluster(full: tuple[int, ...] = (1, 2), witness: int = 3, **cfg: int | bool) -> Network:
    net = Network()
    cs = ConfState(frozenset({*full, witness}), witnesses=frozenset({witness}))
    for nid in sorted({*full, witness}):
        net.add_node(nid, cs, election_tick=10, **cfg)
    net.elect(full[0])
    return net


def durable_payload_holders(net: Network, index: int) -> list[int]:
    """Members whose storage holds ``index`` with its payload (or whose snapshot covers it)."""
    out = []
    for nid, box in net.nodes.items():
        st = box.storage
        covered = index <= st.snapshot().index
        held = st.snapshot().index < index <= st.last_index()
        if covered or (held and st.entries(index, index + 1)[0].data is not None):
            out.append(nid)
    return out


def payload_entries(net: Network, nid: int, upto: int) -> list[Entry]:
    st = net.nodes[nid].storage
    return [
        e
        for e in st.entries(st.first_index(), min(upto, st.last_index()) + 1)
        if e.type is EntryType.NORMAL and e.data
    ]


# --- item 7: the leader's own copy counts only once it is durable --------------------------


def test_witness_commit_waits_for_the_leaders_own_durable_copy() -> None:
    """2 full + witness: the follower's durable copy and the witness's metadata
    must not commit an entry the leader has not persisted yet.

    The driver may send a Ready's appends before its own fsync (parallel
    append); the answers may be stepped before ``advance()``.
    """
    net = cluster()
    leader = net.raft(1)
    acc = leader.propose(b"payload")
    index = acc.index  # type: ignore[union-attr]
    rd = leader.ready()  # the leader's fsync of ``index`` is still running
    net.queue.extend(rd.messages)
    net.stabilize([2, 3])  # 2 persists and acknowledges; the witness acknowledges metadata
    net.deliver([1])
    assert durable_payload_holders(net, index) == [2]
    assert leader.log.committed < index, "committed with one durable payload copy"
    # Once the leader's copy is durable the entry commits.
    net.nodes[1].storage.append(rd.entries)
    if rd.hard_state is not None:
        net.nodes[1].storage.set_hard_state(rd.hard_state)
    leader.advance(rd)
    assert leader.log.committed == index
    assert durable_payload_holders(net, index) == [1, 2]


# --- item 3: the witness's payload floor and removals -------------------------------------


def committed_payload_indexes(net: Network, leader: int) -> list[int]:
    """Committed entries with a non-empty payload, per the leader's log."""
    return [e.index for e in payload_entries(net, leader, net.raft(leader).log.committed)]


def assert_two_copies_among_members(net: Network, leader: int) -> None:
    """Every committed payload is durable on two members of the leader's configuration."""
    members = net.raft(leader).conf_state.members
    for index in committed_payload_indexes(net, leader):
        holders = [n for n in durable_payload_holders(net, index) if n in members]
        assert len(holders) >= 2, f"committed entry {index} is durable on {holders} only"


def write(net: Network, leader: int, n: int, tag: str) -> None:
    for i in range(n):
        net.raft(leader).propose(f"{tag}{i}".encode())
    net.stabilize()


def heartbeat(net: Network, leader: int, rounds: int = 1) -> None:
    """Leader ticks (heartbeats carry the commit index and the payload floor)."""
    for _ in range(rounds):
        net.tick(leader)
        net.stabilize()


def test_witness_keeps_every_payload_with_one_full_voter() -> None:
    """1 full voter + 1 witness: the witness's copy is the only second one."""
    net = cluster(full=(1,), witness=3)
    write(net, 1, 5, "v")
    heartbeat(net, 1, 3)
    assert net.raft(1).status().payload_floor == 0
    assert net.nodes[3].storage.payload_floor == 0
    for index in committed_payload_indexes(net, 1):
        assert durable_payload_holders(net, index) == [1, 3]


def test_removing_a_down_full_member_of_2_plus_1_is_refused() -> None:
    """The issue's scenario: ``remove-member 2`` of a down full member.

    The witness had dropped the payloads both full members held; removing 2
    would leave those on member 1 alone, and with one full voter the old
    floor (the commit index) made the witness drop every payload at once,
    from the moment the removal was appended.
    """
    net = cluster()
    write(net, 1, 3, "both")
    net.groups = [{1, 3}, {2}]  # 2 goes down
    write(net, 1, 2, "alone")
    heartbeat(net, 1, 10)  # after an election timeout the witness holds the payloads
    write(net, 1, 2, "witness")
    heartbeat(net, 1)
    floor = net.nodes[3].storage.payload_floor
    assert floor == net.raft(1).prs[2].match > 1  # it dropped what both full members hold
    assert_two_copies_among_members(net, 1)

    out = net.raft(1).propose_conf_change(ConfChange(ConfChangeType.REMOVE, 2))
    # The removal's append (if any) reaches the witness; nothing may be dropped.
    net.stabilize()
    assert net.nodes[3].storage.payload_floor == floor
    heartbeat(net, 1, 3)
    assert_two_copies_among_members(net, 1)
    write(net, 1, 2, "later")  # every later write is on two members too
    heartbeat(net, 1, 3)
    assert_two_copies_among_members(net, 1)
    assert isinstance(out, Rejected) and out.reason.name == "UNSAFE_REMOVAL", out
    assert "removing 2" in out.detail and "\n" not in out.detail


def test_removing_the_witness_while_it_holds_the_only_second_copy_is_refused() -> None:
    net = cluster()
    write(net, 1, 2, "both")
    net.groups = [{1, 3}, {2}]  # 2 lags: entries commit on 1 + the witness's payloads
    heartbeat(net, 1, 10)
    write(net, 1, 3, "witness")
    out = net.raft(1).propose_conf_change(ConfChange(ConfChangeType.REMOVE, 3))
    net.stabilize()
    heartbeat(net, 1, 3)
    assert_two_copies_among_members(net, 1)
    assert isinstance(out, Rejected) and out.reason.name == "UNSAFE_REMOVAL", out
    # Once 2 has caught up, the witness holds no only copy: the removal goes through.
    net.groups = None
    heartbeat(net, 1, 3)
    assert net.raft(1).prs[2].match == net.raft(1).log.last_index()
    out = net.raft(1).propose_conf_change(ConfChange(ConfChangeType.REMOVE, 3))
    assert isinstance(out, Accepted), out
    net.stabilize()
    heartbeat(net, 1)
    assert net.raft(1).conf_state.witnesses == frozenset()
    assert_two_copies_among_members(net, 1)


def test_witness_drops_payloads_two_full_voters_hold_while_a_third_lags() -> None:
    """3 full voters + witness: the floor is the second-highest full copy, not the lowest."""
    net = cluster(full=(1, 2, 4), witness=3)
    net.groups = [{1, 2, 3}, {4}]
    heartbeat(net, 1, 10)  # 4 lags: the witness takes payloads
    write(net, 1, 4, "v")
    heartbeat(net, 1, 2)
    leader = net.raft(1)
    assert leader.prs[3].payload_mode
    assert leader.status().payload_floor == leader.log.committed
    assert net.nodes[3].storage.payload_floor == leader.log.committed
    assert_two_copies_among_members(net, 1)
