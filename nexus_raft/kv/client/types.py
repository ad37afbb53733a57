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
    """

    id: int
    address: str
    kind: str
    role: str
    match: int
    payload_floor: int

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
        )

    @property
    def is_leader(self) -> bool:
        """True when the answering node considers itself the leader."""
        return self.leader_id is not None and self.leader_id == self.id

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (members as a list of dicts)."""
        data = asdict(self)
        data["members"] = [m.to_dict() for m in self.members]
        return data
