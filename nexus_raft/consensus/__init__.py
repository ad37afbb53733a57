"""nexus_raft.consensus: Raft and nothing else, usable with any StateMachine.

Packages: ``core`` (the sans-I/O Raft state machine: imports nothing that
does I/O), ``log`` (the durable log and hard state on
:mod:`nexus_raft.storage`) and ``node`` (:class:`RaftNode`, the asyncio
driver over ``core``, ``log`` and :mod:`nexus_raft.transport`), plus
:mod:`~nexus_raft.consensus.state_machine`, the contract an application
implements.

May import: :mod:`nexus_raft.storage`, :mod:`nexus_raft.transport` and
:mod:`nexus_raft.errors`. Never imports :mod:`nexus_raft.kv`,
:mod:`nexus_raft.witness`, :mod:`nexus_raft.cli` or :mod:`nexus_raft.demo`
(``tests/test_import_graph.py`` enforces it).

Compatibility re-export: ``KVStateMachine``, ``Client`` and ``SyncClient``
live in :mod:`nexus_raft.kv` (their canonical home); the names are still
importable from here, resolved lazily by name so that this package holds no
import of ``kv``. Names are imported on first use, so ``import
nexus_raft.consensus`` stays cheap and the core never pulls in gRPC or LevelDB.
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

_KV = "nexus_raft." + "kv"  # the re-exported application package (no import edge)

_WHERE = {
    "Client": _KV,
    "KVStateMachine": _KV,
    "SyncClient": _KV,
    "MemberStatus": "nexus_raft.consensus.node.status",
    "NodeConfig": "nexus_raft.consensus.node.config",
    "NodeStatus": "nexus_raft.consensus.node.status",
    "RaftNode": "nexus_raft.consensus.node.node",
    "StateMachine": "nexus_raft.consensus.state_machine",
}

if TYPE_CHECKING:
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.consensus.node.node import RaftNode
    from nexus_raft.consensus.node.status import MemberStatus, NodeStatus
    from nexus_raft.consensus.state_machine import StateMachine


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus_raft.consensus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
