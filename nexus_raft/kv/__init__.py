"""nexus_raft.kv: the replicated KV service, built on :mod:`nexus_raft.consensus`.

The canonical home of the KV names: :class:`KVStateMachine` (the replicated
state machine: data, sessions, watch history), :class:`KVService` (its gRPC
API, ``kv.proto``), :class:`Client`/:class:`SyncClient` (find the leader,
retry with sessions, batch) and :func:`kv_node` (one obvious way to run a KV
member: a :class:`~nexus_raft.consensus.RaftNode` with a ``KVStateMachine``,
which brings its service onto the node's port).

May import: :mod:`nexus_raft.consensus`, :mod:`nexus_raft.storage`,
:mod:`nexus_raft.transport` and :mod:`nexus_raft.errors`; never
:mod:`nexus_raft.witness`, :mod:`nexus_raft.cli` or :mod:`nexus_raft.demo`.
"""

from nexus_raft.kv.client import Client, SyncClient
from nexus_raft.kv.commands import KVCommand, KVOp, KVResult, ResultCode
from nexus_raft.kv.member import kv_node
from nexus_raft.kv.service import KVService
from nexus_raft.kv.state_machine import KVStateMachine

__all__ = [
    "Client",
    "KVCommand",
    "KVOp",
    "KVResult",
    "KVService",
    "KVStateMachine",
    "ResultCode",
    "SyncClient",
    "kv_node",
]
