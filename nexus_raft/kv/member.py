"""One obvious way to run a KV member: a RaftNode with a KVStateMachine.

The KV state machine brings its gRPC service onto the node's listen port
(:class:`~nexus_raft.consensus.state_machine.ServesClients`), so the node
itself stays generic. ``nexus-node`` and the demo start members this way.
"""

from __future__ import annotations

from typing import Any

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.state_machine import KVStateMachine

__all__ = ["kv_node"]


def kv_node(config: NodeConfig, **state_machine_options: Any) -> RaftNode:
    """A :class:`RaftNode` for ``config`` serving the KV API (``nexus.kv.KV``).

    ``state_machine_options`` go to :class:`KVStateMachine` (limits, history
    size, session settings). Start it with ``await node.start()``.
    """
    if not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, not {type(config).__name__}")
    return RaftNode(config, state_machine=KVStateMachine(**state_machine_options))
