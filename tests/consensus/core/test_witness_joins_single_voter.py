"""A witness added to a single full voter learns it is a witness inside the append that
carries its ADD_WITNESS entry, and says so in that append's answer.

With one full voter, an entry commits only once the witness holds its payload
(two payload holders), so the leader counts the witness's ``payload_index``.
A member that does not know yet that it is a witness answers 0 there. The new
witness received the ADD_WITNESS entry together with the entries before it in
one append and answered as the non-witness it was when the append arrived:
``payload_index`` 0, though it stored every payload it was sent. With nothing
more to send, the leader heard no other answer (heartbeat answers carry no
payload index), so the change never committed and neither did anything after
it. Found by the core simulator (seed 2305: a voter left alone by leader
self-removals added a witness).
"""

from __future__ import annotations

from nexus_raft.consensus.core import Accepted, ConfChange, ConfChangeType, ConfState

from .harness import Network

ELECTION = 10


def test_witness_added_to_single_voter_reports_payloads_of_the_append_that_made_it_one() -> None:
    net = Network()
    net.add_node(1, ConfState(frozenset({1})), election_tick=ELECTION)
    net.add_node(2, ConfState(), election_tick=ELECTION)  # a new machine: knows no configuration
    net.elect(1)
    leader = net.raft(1)
    for i in range(3):
        assert isinstance(leader.propose(b"v%d" % i), Accepted)
    net.stabilize()
    out = leader.propose_conf_change(ConfChange(ConfChangeType.ADD_WITNESS, 2))
    assert isinstance(out, Accepted), out
    for _ in range(3 * ELECTION):
        leader.tick()
        net.stabilize()
    assert net.raft(2).is_witness
    assert leader.log.committed >= out.index, "the witness's addition never committed"
    more = leader.propose(b"after")
    assert isinstance(more, Accepted)
    net.stabilize()
    for _ in range(ELECTION):
        leader.tick()
        net.stabilize()
    assert leader.log.committed >= more.index
