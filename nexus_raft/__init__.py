"""nexus_raft: durable, replicated state for Python.

Three layers, each usable alone: :mod:`nexus_raft.storage` (an embedded
LevelDB key-value store), :mod:`nexus_raft.transport` (a pooled gRPC peer
transport) and :mod:`nexus_raft.consensus` (Raft), and on top of Raft the
replicated KV service :mod:`nexus_raft.kv` and the vote-only
:mod:`nexus_raft.witness`; :mod:`nexus_raft.cli` holds the command-line
programs and :mod:`nexus_raft.demo` the demos.

May import: :mod:`nexus_raft.errors` only (the subpackages are imported by
name, never from here). Dependencies point one way: storage, transport ->
consensus -> kv -> witness -> cli/demo (``tests/test_import_graph.py``).
"""

__version__ = "0.1.0"
