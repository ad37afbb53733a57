"""The two-copies promise: every committed entry's payload is durable on two members.

A witness acknowledges entries it holds without payloads, so the quorum
alone does not prove two payload copies; the leader's payload rule, the
witness's payload floor and the membership checks do. These tests drive the
core into the states the issue found and check the copies directly.
"""

from __future__ import annotations

from nexus_raft.consensus.core import ConfState, Entry, EntryType

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
