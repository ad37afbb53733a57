"""The 2+1 stall when the witness's log ends with metadata-only entries (issue #10 item 4).

Full voter 2 comes back after an outage and catches up; while its match
moves it counts as healthy, so the witness goes back to metadata only and
receives a few entries without payloads. The leader dies. 2 lacks entries
whose payloads only the witness holds (behind that metadata-only tail). The
witness must treat its last payload index as the end of its log: vote,
campaign, lead up to there, hand leadership to 2. Before the fix it rejected
2's vote and never campaigned: two of three members up and no leader.
"""

from __future__ import annotations

from nexus_raft.consensus.core import ConfState, Entry, Role

from .harness import Network


def stalled_cluster() -> tuple[Network, list[Entry]]:
    """Leader 1 dead; 2 behind; witness 3 with payloads, then a metadata-only tail.

    Returns the network and the entries 1 committed (with their payloads).
    """
    net = Network()
    cs = ConfState(frozenset({1, 2, 3}), witnesses=frozenset({3}))
    for nid in (1, 2):
        # One entry per append and one append in flight: 2 catches up step by step.
        net.add_node(nid, cs, election_tick=10, max_inflight_msgs=1, max_entries_per_msg=1)
    # The witness batches as usual: leading, it would send its metadata-only
    # tail in the same append as the payloads 2 needs.
    net.add_node(3, cs, election_tick=10)
    net.elect(1)
    leader = net.raft(1)
    # 2 is away: after an election timeout the witness takes payloads.
    net.groups = [{1, 3}, {2}]
    for i in range(4):
        leader.propose(f"a{i}".encode())
    for _ in range(10):
        leader.tick()
        net.stabilize()
    assert leader.prs[3].payload_mode
    committed = leader.log.entries(1, leader.log.committed + 1)
    # 2 is back and catching up: once its match moves the witness gets metadata only.
    net.groups = None
    while leader.prs[2].match <= 1 or leader.prs[3].payload_mode:
        leader.tick()
        for _ in range(3):
            for nid in (1, 2, 3):
                net.process_ready(nid)
            net.deliver()
    behind = net.nodes[2].storage.last_index()
    assert behind < leader.log.committed
    # New entries reach the witness without payloads; then 1 dies.
    leader.propose(b"c0")
    leader.propose(b"c1")
    net.process_ready(1)
    net.deliver([3], drop=[2])
    net.process_ready(3)
    net.queue = [m for m in net.queue if m.to != 1]
    net.groups = [{2, 3}, {1}]
    w = net.nodes[3].storage
    tail = w.entries(w.last_index(), w.last_index() + 1)[0]
    assert tail.data is None and tail.index > leader.log.committed, "a metadata-only tail"
    return net, committed


def test_stall_recovered_when_the_witness_log_ends_with_metadata_only_entries() -> None:
    net, committed = stalled_cluster()
    for _ in range(100):
        if net.raft(2).role is Role.LEADER:
            break
        net.tick(2)
        net.tick(3)
        net.stabilize([2, 3])
    assert net.raft(2).role is Role.LEADER, "2 of 3 members up and no leader"
    assert net.raft(3).role is Role.FOLLOWER
    # Nothing committed was lost: 2 holds and applied every entry 1 committed.
    last = committed[-1].index
    applied = {e.index: e for e in net.nodes[2].applied}
    for e in committed:
        assert applied[e.index] == e
    # And the cluster commits again (2 + the witness, which takes the payloads).
    acc = net.raft(2).propose(b"after")
    net.stabilize([2, 3])
    assert net.raft(2).log.committed >= acc.index > last  # type: ignore[union-attr]
