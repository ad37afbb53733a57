"""nexus_raft.consensus: a Raft library on nexus_raft.storage and nexus_raft.transport.

Embed a replicated state machine with :class:`RaftNode` and :class:`NodeConfig`,
or run the replicated KV service (:class:`KVStateMachine`) and talk to it with
:class:`Client` / :class:`SyncClient`. Names are imported lazily so that
``import nexus_raft.consensus`` stays cheap and the sans-I/O core
(``nexus_raft.consensus.core``) never pulls in gRPC or LevelDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Client",
    "KVStateMachine",
    "MemberStatus",
    "NodeConfig",
    "NodeStatus",
    "RaftNode",
    "StateMachine",
    "SyncClient",
]

_WHERE = {
    "Client": "nexus_raft.consensus.client",
    "KVStateMachine": "nexus_raft.consensus.kv_state_machine",
    "MemberStatus": "nexus_raft.consensus.node_status",
    "NodeConfig": "nexus_raft.consensus.config",
    "NodeStatus": "nexus_raft.consensus.node_status",
    "RaftNode": "nexus_raft.consensus.node",
    "StateMachine": "nexus_raft.consensus.state_machine",
    "SyncClient": "nexus_raft.consensus.sync_client",
}

if TYPE_CHECKING:
    from nexus_raft.consensus.client import Client
    from nexus_raft.consensus.config import NodeConfig
    from nexus_raft.consensus.kv_state_machine import KVStateMachine
    from nexus_raft.consensus.node import RaftNode
    from nexus_raft.consensus.node_status import MemberStatus, NodeStatus
    from nexus_raft.consensus.state_machine import StateMachine
    from nexus_raft.consensus.sync_client import SyncClient


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus_raft.consensus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
