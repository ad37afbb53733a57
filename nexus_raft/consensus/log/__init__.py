"""nexus_raft.consensus.log: the durable Raft log and hard state on a Store.

``store`` (:class:`LogStore`: entries, hard state, snapshot metadata and
configuration; one fsync'd batch per Ready), ``plan`` (how a Ready becomes one
write batch; compaction in chunks) and ``codec`` (entry and metadata records).

May import: :mod:`nexus_raft.consensus.core` (messages and the storage
interface), :mod:`nexus_raft.storage` and :mod:`nexus_raft.errors`.
"""

from nexus_raft.consensus.log.store import LogStore

__all__ = ["LogStore"]
