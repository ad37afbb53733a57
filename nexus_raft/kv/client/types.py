"""Values the KV client returns: watch events, member and node status.

Frozen, slotted dataclasses built from ``kv.proto`` responses, so callers
never handle protobuf objects. ``to_dict()`` gives JSON-ready dicts (used by
``nexusctl --json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MemberInfo", "NodeInfo", "WatchEvent"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change under a watched prefix; ``value`` None means the key was deleted."""

    revision: int
    key: bytes
    value: bytes | None

    @property
    def deleted(self) -> bool:
        """True for a deletion."""
        return self.value is None

    @classmethod
    def from_pb(cls, event: Any) -> WatchEvent:
        """From a ``kv_pb2.WatchEvent``."""
        return cls(int(event.revision), bytes(event.key), None if event.deleted else event.value)


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A cluster member as seen by the answering node.

    ``kind`` is the configured membership (voter, learner, witness); ``role``
    the Raft role it is known to have; ``match`` the leader's view of its
    replicated index (0 when the answering node is not the leader);
    ``payload_floor`` for a witness the index below which it holds no payload.
    Health as the answering node sees it: ``last_contact`` seconds since the
    member last answered it (None: never, or not known there), ``lag``
    entries behind the leader's log (leader's view only), ``health``
    ``"up"``, ``"down"`` or ``"unknown"``. ``address`` is the member's peer
    address; ``name`` and ``client_urls`` are what it published about itself
    (where clients reach it), empty until the answering node has applied that.
    """

    id: int
    address: str
    kind: str
    role: str
    match: int
    payload_floor: int
    last_contact: float | None = None
    lag: int = 0
    health: str = "unknown"
    name: str = ""
    client_urls: tuple[str, ...] = ()

    @classmethod
    def from_pb(cls, member: Any) -> MemberInfo:
        """From a ``kv_pb2.Member``."""
        return cls(
            int(member.id),
            str(member.address),
            str(member.kind),
            str(member.role),
            int(member.match),
            int(member.payload_floor),
            float(member.last_contact_seconds) if member.last_contact_seconds >= 0 else None,
            int(member.lag),
            str(member.health) or "unknown",
            str(member.name),
            tuple(str(u) for u in member.client_urls),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node's status (``Client.status()``): its role, term, indexes and members."""

    endpoint: str
    id: int
    role: str
    term: int
    leader_id: int | None
    leader_address: str | None
    commit: int
    applied: int
    last_index: int
    cluster_id: str
    revision: int
    members: tuple[MemberInfo, ...]
    snapshot_index: int = 0
    version: str = ""
    db_size: int = 0
    errors: tuple[str, ...] = ()
    startup_commit: int = 0
    ready: bool = False
    event_loop: str = ""

    @classmethod
    def from_pb(cls, endpoint: str, resp: Any) -> NodeInfo:
        """From a ``kv_pb2.StatusResponse`` answered by ``endpoint``."""
        return cls(
            endpoint=endpoint,
            id=int(resp.id),
            role=str(resp.role),
            term=int(resp.term),
            leader_id=int(resp.leader_id) or None,
            leader_address=str(resp.leader_address) or None,
            commit=int(resp.commit),
            applied=int(resp.applied),
            last_index=int(resp.last_index),
            cluster_id=str(resp.cluster_id),
            revision=int(resp.revision),
            members=tuple(MemberInfo.from_pb(m) for m in resp.members),
            snapshot_index=int(resp.snapshot_index),
            version=str(resp.version),
            db_size=int(resp.db_size),
            errors=tuple(str(e) for e in resp.errors),
            startup_commit=int(resp.startup_commit),
            ready=bool(resp.ready),
            event_loop=str(resp.event_loop),
        )

    @property
    def is_leader(self) -> bool:
        """True when the answering node considers itself the leader."""
        return self.leader_id is not None and self.leader_id == self.id

    @property
    def kind(self) -> str:
        """This member's own kind (voter, learner, witness) as it sees itself."""
        me = next((m for m in self.members if m.id == self.id), None)
        return me.kind if me is not None else "unknown"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (members as a list of dicts)."""
        data = asdict(self)
        data["members"] = [m.to_dict() for m in self.members]
        data["errors"] = list(self.errors)
        return data
