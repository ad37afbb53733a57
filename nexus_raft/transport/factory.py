"""PeerTransport: what makes a node's two ends of peer traffic (client pool, server).

A :class:`~nexus_raft.consensus.RaftNode` builds its peer clients and its
peer server through a ``PeerTransport``. :data:`GRPC` (real gRPC over TCP)
is the default and the only one production uses. The whole-node simulator
(``tests/sim_node``) passes its own transport, whose pool and server have the
same interface as :class:`RaftClientPool` / :class:`RaftServer` but carry
messages over a simulated network on a virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from nexus_raft.transport.handler import RaftHandler
from nexus_raft.transport.identity import PeerIdentity
from nexus_raft.transport.pool import RaftClientPool
from nexus_raft.transport.server import ExtraServicer, RaftServer
from nexus_raft.transport.tls import TLSConfig

__all__ = ["GRPC", "GrpcTransport", "PeerTransport"]


@runtime_checkable
class PeerTransport(Protocol):
    """Makes a node's peer client pool and peer server (see the module docstring)."""

    def client_pool(
        self, *, cluster_id: str, tls: TLSConfig | None, max_message_bytes: int
    ) -> RaftClientPool:
        """The pool of clients to the node's peers."""
        ...

    def server(
        self,
        handler: RaftHandler,
        listen: str,
        *,
        tls: TLSConfig | None,
        extra_servicers: Iterable[ExtraServicer],
        cluster_id: str,
        peer_identity: PeerIdentity | None = None,
    ) -> RaftServer:
        """The server of the node's peer service (not started yet).

        ``peer_identity``: check every request's claimed sender against the
        member its TLS certificate proves (see :class:`RaftServer`).
        """
        ...


class GrpcTransport:
    """Real gRPC: :class:`RaftClientPool` and :class:`RaftServer`."""

    def client_pool(
        self, *, cluster_id: str, tls: TLSConfig | None, max_message_bytes: int
    ) -> RaftClientPool:
        """A gRPC client pool."""
        return RaftClientPool(cluster_id=cluster_id, tls=tls, max_message_bytes=max_message_bytes)

    def server(
        self,
        handler: RaftHandler,
        listen: str,
        *,
        tls: TLSConfig | None,
        extra_servicers: Iterable[ExtraServicer],
        cluster_id: str,
        peer_identity: PeerIdentity | None = None,
    ) -> RaftServer:
        """A gRPC server on ``listen``."""
        return RaftServer(
            handler,
            listen,
            tls=tls,
            extra_servicers=extra_servicers,
            cluster_id=cluster_id,
            peer_identity=peer_identity,
        )

    def __repr__(self) -> str:
        return "GrpcTransport()"


GRPC = GrpcTransport()
"""The default transport of a RaftNode."""
