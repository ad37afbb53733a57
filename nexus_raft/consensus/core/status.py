"""A frozen snapshot of one core's state, for drivers, tools and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from nexus_raft.consensus.core.messages import ConfState, MemberKind, Role
from nexus_raft.consensus.core.progress import ProgressState

__all__ = ["PeerProgress", "Status"]


@dataclass(frozen=True, slots=True)
class PeerProgress:
    """The leader's view of one member (``payload_match`` matters for witnesses)."""

    match: int
    next: int
    state: ProgressState
    kind: MemberKind
    payload_match: int = 0
    recent_active: bool = False
    payload_mode: bool = False  # a witness the leader sends payloads to


@dataclass(frozen=True, slots=True)
class Status:
    """State of one core. ``progress`` is empty unless the node is the leader.

    ``payload_floor``: on a leader, the index up to which every full voter
    holds payloads (it tells witnesses so); on a witness, the floor it was
    told (it holds no payload at or below it).
    """

    id: int
    role: Role
    term: int
    vote: int
    leader_id: int
    commit: int
    applied: int
    last_index: int
    conf_state: ConfState
    progress: dict[int, PeerProgress] = field(default_factory=dict)
    payload_floor: int = 0
    transferee: int = 0
