"""nexus_raft.transport: a pooled gRPC client and server for Raft peer traffic.

Usable on its own; imports nothing of nexus_raft but :mod:`nexus_raft.errors`.

Client side: :class:`NodeAddress` names a peer, :class:`RaftClientPool`
hands out one :class:`RaftClient` per node id. Server side:
:class:`RaftServer` serves a :class:`RaftHandler`. The message classes are
the generated protobuf classes of ``transport/proto/raft.proto``, re-exported
here (import them from this package, never from ``_generated``).
"""

from nexus_raft.errors import TransportError
from nexus_raft.transport._generated.raft_pb2 import (
    AppendRequest,
    AppendResponse,
    Entry,
    EntryType,
    ForwardError,
    ForwardRequest,
    ForwardResponse,
    ForwardResult,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotAck,
    SnapshotChunk,
    SnapshotMeta,
    SnapshotTrailer,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.client import RaftClient
from nexus_raft.transport.errors import (
    ClientClosed,
    ClusterMismatch,
    DeadlineExceeded,
    ListenFailed,
    MalformedMessage,
    PayloadTooLarge,
    PeerRefused,
    PeerUnavailable,
    RemoteError,
    SnapshotCorrupted,
    SnapshotRejected,
    SubscriberTooSlow,
    Unimplemented,
)
from nexus_raft.transport.handler import RaftHandler
from nexus_raft.transport.identity import PeerIdentity, authenticated_member
from nexus_raft.transport.options import (
    DEFAULT_CLUSTER_ID,
    MAX_MESSAGE_BYTES,
    SNAPSHOT_CHUNK_BYTES,
    Timeouts,
)
from nexus_raft.transport.pool import RaftClientPool
from nexus_raft.transport.pubsub import (
    Publisher,
    PubSubClient,
    PubSubMessage,
    SlowPolicy,
    Subscription,
)
from nexus_raft.transport.server import ExtraServicer, RaftServer, ServiceServer
from nexus_raft.transport.stream import HeartbeatStream, StreamReset
from nexus_raft.transport.tls import TLSConfig

__all__ = [
    # addressing, client, server
    "NodeAddress",
    "RaftClient",
    "RaftClientPool",
    "RaftServer",
    "ServiceServer",
    "RaftHandler",
    "PeerIdentity",
    "authenticated_member",
    "ExtraServicer",
    "HeartbeatStream",
    "StreamReset",
    "TLSConfig",
    "Timeouts",
    "DEFAULT_CLUSTER_ID",
    "MAX_MESSAGE_BYTES",
    "SNAPSHOT_CHUNK_BYTES",
    # messages (raft.proto)
    "VoteRequest",
    "VoteResponse",
    "AppendRequest",
    "AppendResponse",
    "Entry",
    "EntryType",
    "SnapshotMeta",
    "SnapshotChunk",
    "SnapshotTrailer",
    "SnapshotAck",
    "TimeoutNowRequest",
    "TimeoutNowResponse",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ForwardRequest",
    "ForwardResponse",
    "ForwardResult",
    "ForwardError",
    # errors
    "TransportError",
    "PeerUnavailable",
    "PeerRefused",
    "DeadlineExceeded",
    "ClusterMismatch",
    "PayloadTooLarge",
    "SnapshotRejected",
    "SnapshotCorrupted",
    "MalformedMessage",
    "RemoteError",
    "ClientClosed",
    "ListenFailed",
    "Unimplemented",
    "SubscriberTooSlow",
    # publish/subscribe (pubsub.proto)
    "Publisher",
    "PubSubClient",
    "PubSubMessage",
    "SlowPolicy",
    "Subscription",
]
