"""Transport errors, and the one place where gRPC statuses become them.

Every failure a peer RPC can have reaches callers as a subclass of
:class:`nexus_raft.errors.TransportError`; ``grpc`` exceptions never escape
:mod:`nexus_raft.transport`. :func:`from_rpc_error` is the only mapping from a
gRPC status to these classes, and the server side uses :data:`ERROR_KEY`
trailing metadata to say precisely *why* it refused a call where the status
code alone would be ambiguous.
"""

from __future__ import annotations

from typing import Any

import grpc

from nexus_raft.errors import ClusterMismatch as _AnyClusterMismatch
from nexus_raft.errors import TransportError

__all__ = [
    "ERROR_KEY",
    "ClientClosed",
    "ClusterMismatch",
    "DeadlineExceeded",
    "ListenFailed",
    "MalformedMessage",
    "PayloadTooLarge",
    "PeerRefused",
    "PeerUnavailable",
    "RemoteError",
    "SnapshotCorrupted",
    "SnapshotRejected",
    "SubscriberTooSlow",
    "TransportError",
    "Unimplemented",
    "from_rpc_error",
]

ERROR_KEY = "nexus-error"
"""Trailing-metadata key the server sets to name the refusal precisely."""

# Values of ERROR_KEY (the server sets them; from_rpc_error reads them).
CLUSTER_MISMATCH = "cluster-mismatch"
SNAPSHOT_REJECTED = "snapshot-rejected"
MALFORMED = "malformed"
HANDLER_FAILED = "handler-failed"
PEER_REFUSED = "peer-refused"

CLUSTER_KEY = "nexus-cluster-id"
"""Trailing-metadata key of a cluster-id refusal: the refusing server's own cluster id."""


class _PeerError(TransportError):
    """A transport error that knows which peer and which RPC it came from."""

    def __init__(
        self, message: str, *, peer: str | None = None, method: str | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.peer = peer
        """The peer's endpoint (``host:port``), when known."""
        self.method = method
        """The RPC (``RequestVote``, ``Stream``, ...), when known."""
        self.status = status
        """The gRPC status code's name (``"UNAVAILABLE"``, ...), when there was one."""


class PeerUnavailable(_PeerError):
    """The peer could not be reached, or the connection broke mid-call."""


class DeadlineExceeded(_PeerError, TimeoutError):
    """The call's deadline passed before the peer answered."""


class ClusterMismatch(_PeerError, _AnyClusterMismatch):
    """The peer belongs to another cluster (its cluster id differs from ours).

    Also a :class:`nexus_raft.errors.ClusterMismatch`, so one ``except`` catches
    the refusal whether it came from the peer transport or the KV service.
    ``remote_cluster_id`` is the cluster the peer says it belongs to (None
    when it did not say).
    """

    def __init__(
        self, message: str, *, remote_cluster_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.remote_cluster_id = remote_cluster_id


class PayloadTooLarge(_PeerError):
    """A message exceeded the sender's or the receiver's maximum message size."""


class SnapshotRejected(_PeerError):
    """The receiver refused a snapshot stream (corrupted, truncated or malformed)."""


class MalformedMessage(_PeerError):
    """The peer could not parse or refused the shape of what we sent."""


class PeerRefused(_PeerError):
    """The receiver refused a peer request on purpose (PERMISSION_DENIED).

    Server side, a handler raises it to refuse a request that is not to be
    trusted: a sender outside the configuration, a certificate that does not
    prove the claimed sender, a term or index no correct peer can send. The
    transport answers it at once and logs it at WARNING (rate-limited by
    ``kind`` and ``sender``). Client side, the call raises it.
    """

    def __init__(
        self, message: str, *, kind: str = "refused", sender: int | None = None,
        peer: str | None = None, method: str | None = None, status: str | None = None,
    ) -> None:
        super().__init__(message, peer=peer, method=method, status=status)
        self.kind = kind
        """A short category of the refusal (for rate-limiting and metrics)."""
        self.sender = sender
        """The member id the refused request claimed to come from, when known."""


class SubscriberTooSlow(_PeerError):
    """A pub/sub server ended this subscription: it fell behind its queue bound."""


class RemoteError(_PeerError):
    """The peer's handler failed, or the peer answered with an unexpected status."""


class Unimplemented(RemoteError):
    """The peer does not serve this method (a handler that implements only some)."""


class ClientClosed(_PeerError):
    """The client (or the pool that owned it) was closed; the call was not made."""


class ListenFailed(TransportError):
    """The server could not bind its listen address (in use, not local, ...)."""


class SnapshotCorrupted(TransportError):
    """Server side: the snapshot stream being received is damaged or incomplete.

    Raised by the ``chunks`` iterator a handler's ``install_snapshot`` gets,
    instead of ending normally, so a handler never mistakes a damaged stream
    for a complete one.
    """


def _metadata_value(err: Any, key: str) -> str | None:
    try:
        trailing = err.trailing_metadata()
    except Exception:  # a locally-made error may carry no metadata at all
        return None
    for item in trailing or ():
        k, v = item[0], item[1]
        if k == key:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return None


def from_rpc_error(
    err: grpc.RpcError, *, peer: str | None = None, method: str | None = None
) -> TransportError:
    """Map a gRPC error to the matching :class:`TransportError` subclass.

    This is the only place that knows gRPC status codes; everything in
    :mod:`nexus_raft.transport` raises what it returns.
    """
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else None
    name = code.name if code is not None else None
    reason = _metadata_value(err, ERROR_KEY)
    text = f"{method or 'rpc'} to {peer or 'peer'} failed: {name}: {details or ''}".rstrip(": ")
    kwargs: dict[str, Any] = {"peer": peer, "method": method, "status": name}
    if reason == CLUSTER_MISMATCH:
        return ClusterMismatch(text, remote_cluster_id=_metadata_value(err, CLUSTER_KEY), **kwargs)
    if reason == SNAPSHOT_REJECTED:
        return SnapshotRejected(text, **kwargs)
    if reason == MALFORMED:
        return MalformedMessage(text, **kwargs)
    if reason == PEER_REFUSED or code == grpc.StatusCode.PERMISSION_DENIED:
        return PeerRefused(text, **kwargs)
    if code == grpc.StatusCode.UNAVAILABLE:
        return PeerUnavailable(text, **kwargs)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(text, **kwargs)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return PayloadTooLarge(text, **kwargs)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return MalformedMessage(text, **kwargs)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return PeerUnavailable(text, **kwargs)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return Unimplemented(text, **kwargs)
    return RemoteError(text, **kwargs)
