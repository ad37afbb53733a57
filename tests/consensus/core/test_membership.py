"""Membership rules (membership.py) and the witness payload rules end to end."""

from __future__ import annotations

from nexus_raft.consensus.core import ConfChange, ConfChangeType, ConfState, Role
from nexus_raft.consensus.core.membership import apply_conf_change, validate_conf_change
from tests.consensus.core.harness import Network

CS = ConfState(frozenset({1, 2, 3}), frozenset({4}), frozenset({3}))


def cc(kind: ConfChangeType, nid: int) -> ConfChange:
    return ConfChange(kind, nid)


def test_add_voter_promotes_learner() -> None:
    out = apply_conf_change(CS, cc(ConfChangeType.ADD_VOTER, 4))
    assert out.voters == {1, 2, 3, 4} and not out.learners


def test_invalid_changes_leave_configuration_unchanged() -> None:
    for change in (
        cc(ConfChangeType.ADD_VOTER, 1),
        cc(ConfChangeType.ADD_LEARNER, 2),
        cc(ConfChangeType.ADD_WITNESS, 4),
        cc(ConfChangeType.REMOVE, 9),
        cc(ConfChangeType.ADD_VOTER, 0),
    ):
        assert validate_conf_change(CS, change) is not None
        assert apply_conf_change(CS, change) is CS


def test_last_full_voter_cannot_be_removed() -> None:
    cs = ConfState(frozenset({1, 3}), witnesses=frozenset({3}))
    assert validate_conf_change(cs, cc(ConfChangeType.REMOVE, 1)) is not None
    assert validate_conf_change(cs, cc(ConfChangeType.REMOVE, 3)) is None


def test_witness_add_and_remove() -> None:
    out = apply_conf_change(CS, cc(ConfChangeType.ADD_WITNESS, 5))
    assert 5 in out.voters and 5 in out.witnesses
    out = apply_conf_change(out, cc(ConfChangeType.REMOVE, 3))
    assert 3 not in out.voters and 3 not in out.witnesses


def witness_cluster() -> Network:
    net = Network()
    cs = ConfState(frozenset({1, 2, 3}), witnesses=frozenset({3}))
    for i in (1, 2, 3):
        net.add_node(i, cs)
    net.elect(1)
    return net


def test_witness_receives_metadata_only_while_full_voters_healthy() -> None:
    net = witness_cluster()
    for _i in range(10):
        net.raft(1).propose(bytes(1000))
    net.stabilize()
    st = net.nodes[3].storage
    assert st.payload_bytes() == 0
    assert st.last_index() == net.nodes[1].storage.last_index()
    assert net.nodes[3].applied == []  # a witness never applies


def test_entry_commits_only_with_two_payload_holders() -> None:
    net = witness_cluster()
    net.groups = [{1, 3}, {2}]
    acc = net.raft(1).propose(b"payload")
    net.stabilize()
    leader = net.raft(1)
    assert leader.log.committed < acc.index  # type: ignore[union-attr]
    # 2 is silent: after election_tick (10) ticks it lags and 3 takes payloads.
    for _ in range(10):
        leader.tick()
        net.stabilize()
    assert leader.log.committed >= acc.index  # type: ignore[union-attr]
    held = [e for e in net.nodes[3].storage.entries(acc.index, acc.index + 1)]  # type: ignore[union-attr]
    assert held[0].data == b"payload"


def test_witness_drops_payloads_below_floor_after_full_voter_catches_up() -> None:
    net = witness_cluster()
    net.groups = [{1, 3}, {2}]
    net.raft(1).propose(b"p" * 100)
    for _ in range(10):
        net.raft(1).tick()
        net.stabilize()
    assert net.nodes[3].storage.payload_bytes() > 0
    net.groups = None
    for _ in range(4):
        net.raft(1).tick()
        net.stabilize()
    assert net.nodes[3].storage.payload_bytes() == 0
    assert net.nodes[3].storage.payload_floor >= 2


def test_witness_never_starts_an_election_on_its_own() -> None:
    net = witness_cluster()
    net.groups = [{1}, {2}, {3}]
    for _ in range(100):
        net.raft(3).tick()
    net.stabilize()
    assert net.raft(3).role is Role.FOLLOWER
    assert net.raft(3).term == 1
