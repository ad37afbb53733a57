"""When does a full voter count as lagging (so the witness must take payloads)?

A slow full voter whose match keeps moving must never cost the witness
payloads; a silent one, or one whose match stops moving, must switch the
witness to payloads after one election timeout, so commits stall for about
that long and no longer.
"""

from __future__ import annotations

from nexus_raft.consensus.core import ConfState, EntryType
from nexus_raft.consensus.core.messages import AppendRequest

from .harness import Network

ELECTION = 10


def cluster(**cfg: int | bool) -> Network:
    net = Network()
    cs = ConfState(frozenset({1, 2, 3}), witnesses=frozenset({3}))
    for i in (1, 2, 3):
        net.add_node(i, cs, election_tick=ELECTION, **cfg)
    net.elect(1)
    return net


def payloads_sent_to_witness(net: Network) -> int:
    """Payload bytes in AppendRequests queued for the witness (non-configuration)."""
    return sum(
        len(e.data)
        for m in net.queue
        if isinstance(m, AppendRequest) and m.to == 3
        for e in m.entries
        if e.data is not None and e.type is not EntryType.CONF_CHANGE
    )


def test_slow_but_progressing_voter_never_costs_the_witness_payloads() -> None:
    # A window of 2 messages fills at once; 2 answers only every 8 ticks (longer
    # than election_tick // 2, the old threshold) but its match moves each time.
    net = cluster(max_inflight_msgs=2, max_entries_per_msg=1)
    leader = net.raft(1)
    sent = 0
    for round_ in range(20):
        before = leader.log.committed
        for i in range(3):
            leader.propose(f"r{round_}-{i}".encode() * 10)
        for _ in range(8):
            leader.tick()
            for _ in range(50):  # 1 and 3 talk; everything to or from 2 waits
                net.process_ready(1)
                net.process_ready(3)
                sent += payloads_sent_to_witness(net)
                if not any(m.to in (1, 3) for m in net.queue):
                    break
                net.deliver([1, 3])
        assert leader.prs[2].inflights.full() or leader.prs[2].match == leader.log.last_index()
        net.stabilize()  # 2 answers at last
        assert leader.log.committed > before, "the commit follows the slow voter"
    assert sent == 0
    assert net.nodes[3].storage.payload_bytes() == 0
    assert not leader.prs[3].payload_mode


def _ticks_until_committed(net: Network, index: int, limit: int = 100) -> int:
    leader = net.raft(1)
    for n in range(limit):
        if leader.log.committed >= index:
            return n
        leader.tick()
        net.stabilize()
    raise AssertionError("never committed")


def test_silent_voter_stalls_commits_for_one_election_timeout() -> None:
    net = cluster()
    net.groups = [{1, 3}, {2}]  # 2 goes silent (no broken connection is reported)
    acc = net.raft(1).propose(b"v" * 100)
    net.stabilize()
    stall = _ticks_until_committed(net, acc.index)  # type: ignore[union-attr]
    assert stall == ELECTION
    assert net.nodes[3].storage.entries(2, 3)[0].data == b"v" * 100


def test_voter_silent_before_the_write_costs_no_stall() -> None:
    net = cluster()
    net.groups = [{1, 3}, {2}]
    for _ in range(ELECTION):
        net.raft(1).tick()
        net.stabilize()
    assert net.raft(1).prs[3].payload_mode
    acc = net.raft(1).propose(b"v")
    net.stabilize()
    assert _ticks_until_committed(net, acc.index) == 0  # type: ignore[union-attr]


def test_unreachable_report_switches_the_witness_at_once() -> None:
    net = cluster()
    net.groups = [{1, 3}, {2}]
    net.raft(1).report_unreachable(2)  # e.g. its connection broke (killed process)
    acc = net.raft(1).propose(b"v")
    net.stabilize()
    assert _ticks_until_committed(net, acc.index) == 0  # type: ignore[union-attr]


def test_voter_answering_heartbeats_but_not_appends_counts_as_lagging() -> None:
    # Heartbeat answers keep 2 "active"; only its stuck match reveals the lag.
    net = cluster()
    leader = net.raft(1)
    acc = leader.propose(b"v" * 10)

    def drop_appends_to_2() -> None:
        net.queue = [m for m in net.queue if not (isinstance(m, AppendRequest) and m.to == 2)]

    ticks = 0
    for _ in range(3 * ELECTION):
        for _ in range(50):
            for nid in (1, 2, 3):
                net.process_ready(nid)
            drop_appends_to_2()
            if not net.queue:
                break
            net.deliver()
        if leader.log.committed >= acc.index:  # type: ignore[union-attr]
            break
        leader.tick()
        ticks += 1
        assert leader.prs[2].inactive_ticks <= 2  # heartbeats skip rounds after an append
    assert leader.log.committed >= acc.index  # type: ignore[union-attr]
    assert ticks == ELECTION
