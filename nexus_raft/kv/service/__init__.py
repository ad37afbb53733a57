"""nexus_raft.kv.service: the KV gRPC servicer of a node (``nexus.kv.KV``).

``kv`` (:class:`KVService`: one RPC per handler), ``batch`` (the one-pass
``Batch`` RPC), ``cluster`` (membership, transfer, snapshot and status RPCs),
``status`` (status messages) and ``base`` (shared checks and the node
interface the service needs).

May import: :mod:`nexus_raft.kv` (commands, wire, limits),
:mod:`nexus_raft.transport` (generated code) and :mod:`nexus_raft.errors`.
"""

from nexus_raft.kv.service.kv import KVService, ServedNode

__all__ = ["KVService", "ServedNode"]
