"""nexus_raft: durable, replicated state for Python.

Three layers, each usable alone: :mod:`nexus_raft.storage` (an embedded
LevelDB key-value store), :mod:`nexus_raft.transport` (a pooled gRPC peer
transport) and :mod:`nexus_raft.consensus` (Raft), plus the vote-only
:mod:`nexus_raft.witness`.
"""

__version__ = "0.1.0"
