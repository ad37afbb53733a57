"""What ``RaftNode.status()`` returns: a snapshot of the node and its view of the members."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nexus_raft.consensus.core.messages import Role
from nexus_raft.consensus.core.status import Status
from nexus_raft.consensus.node.attributes import MemberAttributes

__all__ = ["MemberStatus", "NodeStatus", "build_status", "event_loop_name"]


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One member as this node sees it.

    ``kind`` is ``"voter"``, ``"learner"`` or ``"witness"``; ``role`` is
    ``"leader"`` for the known leader, else the kind (``"follower"`` for a
    full voter). ``match`` is the leader's replication progress (0 when this
    node is not the leader); ``payload_floor`` is, for a witness, the index at
    or below which it holds no payloads (as far as this node knows).

    Health as this node sees it: ``last_contact`` is how many seconds ago the
    member last answered this node (0 for the node itself; None: never, or
    not known here: a follower only hears from the leader); ``lag`` is how
    many entries the member is behind the leader's log (leader only, else 0);
    ``reachable`` is True/False when this node can tell (the leader, about
    every member; any node, about itself and the leader), else None.
    ``payload_mode``: a witness the leader currently sends payloads to.

    ``address`` is the member's peer address (the address book); ``name``
    and ``client_urls`` are what the member published about itself (member
    attributes; empty until this node has applied its publication).
    """

    id: int
    address: str
    kind: str
    role: str
    match: int = 0
    payload_floor: int = 0
    last_contact: float | None = None
    lag: int = 0
    reachable: bool | None = None
    payload_mode: bool = False
    name: str = ""
    client_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The node's role, term, leader and log positions, and the members.

    ``leader_address`` is where clients reach the leader (its client endpoint).

    ``startup_commit`` is the commit index the node saw at start-up: the
    one it had durably, raised to the leader's commit index as the node's
    first read-index round after start learned it (``caught_up`` says that
    round completed; a witness, which serves no reads, skips it). ``ready``
    means it knows a leader and has applied at least that far (what
    ``/readyz`` answers): a member restarted far behind is not ready while
    it catches up. ``errors`` lists what is wrong right now
    (no leader, quorum lost, state machine failed), empty when healthy.
    ``db_size`` is the bytes of the node's data directory on disk.
    ``event_loop`` names the asyncio loop implementation the node runs on
    (``"asyncio"`` or ``"uvloop"``).
    """

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
    version: str = ""
    db_size: int = 0
    startup_commit: int = 0
    errors: tuple[str, ...] = ()
    event_loop: str = ""
    caught_up: bool = True

    @property
    def has_leader(self) -> bool:
        """Whether this node knows a leader."""
        return bool(self.leader_id)

    @property
    def ready(self) -> bool:
        """Knows a leader and has applied up to the commit index it saw at start-up."""
        return self.has_leader and self.caught_up and self.applied >= self.startup_commit


def build_status(
    st: Status,
    *,
    applied: int,
    snapshot_index: int,
    addresses: Mapping[int, str],
    witness: bool,
    contacts: Mapping[int, float] | None = None,
    down_after: float = 0.0,
    version: str = "",
    db_size: int = 0,
    startup_commit: int = 0,
    errors: Sequence[str] = (),
    payload_modes: Mapping[int, bool] | None = None,
    attributes: Mapping[int, MemberAttributes] | None = None,
    leader_address: str | None = None,
    caught_up: bool = True,
) -> NodeStatus:
    """A NodeStatus from the core's status and the node's own positions.

    ``contacts``: seconds since each member last answered this node (the
    leader: since this follower last heard from it); a member silent for more
    than ``down_after`` seconds (0: no judgement) counts as unreachable.
    """
    contacts = contacts or {}
    modes = payload_modes or {}
    attributes = attributes or {}
    leader = st.role is Role.LEADER
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
        if nid == st.id and leader:
            match = st.last_index
        floor = st.payload_floor if nid in cs.witnesses else 0
        contact: float | None
        reachable: bool | None = None
        if nid == st.id:
            contact, reachable = 0.0, True
        else:
            contact = contacts.get(nid)
            if down_after > 0 and (leader or nid == st.leader_id):
                reachable = contact is not None and contact <= down_after
        lag = max(0, st.last_index - match) if leader else 0
        members.append(
            MemberStatus(
                nid,
                addresses.get(nid, ""),
                kind_text,
                role,
                match,
                floor,
                contact,
                lag,
                reachable,
                modes.get(nid, False),
                *_published(attributes.get(nid)),
            )
        )
    lid = st.leader_id
    return NodeStatus(
        id=st.id,
        role=st.role.value,
        term=st.term,
        leader_id=lid,
        leader_address=leader_address if lid else None,
        commit=st.commit,
        applied=applied,
        last_index=st.last_index,
        members=members,
        snapshot_index=snapshot_index,
        witness=witness,
        version=version,
        db_size=db_size,
        startup_commit=startup_commit,
        errors=tuple(errors),
        event_loop=event_loop_name(),
        caught_up=caught_up,
    )


def _published(attrs: MemberAttributes | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if attrs is None else (attrs.name, attrs.client_urls)


def event_loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the running loop's implementation ("" outside a loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return ""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
