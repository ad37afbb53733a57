"""What ``RaftNode.status()`` returns: a snapshot of the node and its view of the members."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nexus_raft.consensus.core.messages import Role
from nexus_raft.consensus.core.status import Status

__all__ = ["MemberStatus", "NodeStatus", "build_status"]


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One member as this node sees it.

    ``kind`` is ``"voter"``, ``"learner"`` or ``"witness"``; ``role`` is
    ``"leader"`` for the known leader, else the kind (``"follower"`` for a
    full voter). ``match`` is the leader's replication progress (0 when this
    node is not the leader); ``payload_floor`` is, for a witness, the index at
    or below which it holds no payloads (as far as this node knows).
    """

    id: int
    address: str
    kind: str
    role: str
    match: int = 0
    payload_floor: int = 0


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The node's role, term, leader and log positions, and the members."""

    id: int
    role: str
    term: int
    leader_id: int
    leader_address: str | None
    commit: int
    applied: int
    last_index: int
    members: list[MemberStatus] = field(default_factory=list)
    snapshot_index: int = 0
    witness: bool = False


def build_status(
    st: Status,
    *,
    applied: int,
    snapshot_index: int,
    addresses: Mapping[int, str],
    witness: bool,
) -> NodeStatus:
    """A NodeStatus from the core's status and the node's own positions."""
    members: list[MemberStatus] = []
    cs = st.conf_state
    for nid in sorted(cs.members):
        kind = cs.kind(nid)
        kind_text = kind.value if kind is not None else "unknown"
        if nid == st.leader_id:
            role = "leader"
        elif kind_text == "voter":
            role = "follower"
        else:
            role = kind_text
        pr = st.progress.get(nid)
        match = pr.match if pr is not None else 0
        if nid == st.id and st.role is Role.LEADER:
            match = st.last_index
        floor = st.payload_floor if nid in cs.witnesses else 0
        members.append(MemberStatus(nid, addresses.get(nid, ""), kind_text, role, match, floor))
    lid = st.leader_id
    return NodeStatus(
        id=st.id,
        role=st.role.value,
        term=st.term,
        leader_id=lid,
        leader_address=addresses.get(lid) if lid else None,
        commit=st.commit,
        applied=applied,
        last_index=st.last_index,
        members=members,
        snapshot_index=snapshot_index,
        witness=witness,
    )
