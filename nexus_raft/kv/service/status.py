"""Node status -> ``kv.proto`` Status/Member messages.

Kept apart from the servicer because it is the one place that knows the shape
of ``RaftNode.status()`` (``NodeStatus``/``MemberStatus``); roles and kinds
may be enums or strings and are sent as lower-case names.
"""

from __future__ import annotations

import enum
from typing import Any

from nexus_raft.kv.wire import kv_pb2

__all__ = ["member_to_pb", "role_text", "status_to_pb"]


def role_text(value: object) -> str:
    """``Role.LEADER`` / ``"leader"`` / ``None`` -> ``"leader"`` / ``"leader"`` / ``""``."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        raw = value.value if isinstance(value.value, str) else value.name
        return str(raw).lower()
    return str(value).lower()


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else 0


def _health(reachable: object) -> str:
    if reachable is None:
        return ""
    return "up" if reachable else "down"


def member_to_pb(member: Any) -> Any:
    """One ``MemberStatus`` as a ``kv_pb2.Member``."""
    contact = getattr(member, "last_contact", None)
    return kv_pb2.Member(
        id=_int(getattr(member, "id", 0)),
        address=str(getattr(member, "address", "") or ""),
        kind=role_text(getattr(member, "kind", "")),
        role=role_text(getattr(member, "role", "")),
        match=_int(getattr(member, "match", 0)),
        payload_floor=_int(getattr(member, "payload_floor", 0)),
        last_contact_seconds=float(contact) if isinstance(contact, (int, float)) else -1.0,
        lag=_int(getattr(member, "lag", 0)),
        health=_health(getattr(member, "reachable", None)),
        name=str(getattr(member, "name", "") or ""),
        client_urls=[str(u) for u in getattr(member, "client_urls", ()) or ()],
    )


def status_to_pb(status: Any, cluster_id: str, revision: int) -> Any:
    """A ``NodeStatus`` as a ``kv_pb2.StatusResponse``."""
    return kv_pb2.StatusResponse(
        id=_int(status.id),
        role=role_text(status.role),
        term=_int(status.term),
        leader_id=_int(status.leader_id),
        leader_address=str(status.leader_address or ""),
        commit=_int(status.commit),
        applied=_int(status.applied),
        last_index=_int(status.last_index),
        cluster_id=cluster_id,
        revision=revision,
        members=[member_to_pb(m) for m in status.members],
        snapshot_index=_int(getattr(status, "snapshot_index", 0)),
        version=str(getattr(status, "version", "") or ""),
        db_size=_int(getattr(status, "db_size", 0)),
        errors=[str(e) for e in getattr(status, "errors", ())],
        startup_commit=_int(getattr(status, "startup_commit", 0)),
        ready=bool(getattr(status, "ready", False)),
        event_loop=str(getattr(status, "event_loop", "") or ""),
    )
