"""nexus_raft.witness: a vote-only cluster member (``nexus-witness``).

A witness lets two full members and one cheap box tolerate the loss of any
one of the three: it votes and counts toward commit quorums, but keeps only
the metadata of the log (term, vote, (index, term, type) per entry,
configuration entries in full) and holds payloads only while a full member
lags. See :class:`WitnessNode` and the README's witness section.

May import: :mod:`nexus_raft.consensus` (the node in witness mode),
:mod:`nexus_raft.kv` (its KV front end, which only points clients at the
leader), :mod:`nexus_raft.storage`, :mod:`nexus_raft.transport` and
:mod:`nexus_raft.errors`; never :mod:`nexus_raft.cli` or :mod:`nexus_raft.demo`.
"""

from nexus_raft.witness.config import check_witness_config, witness_config
from nexus_raft.witness.footprint import disk_bytes, rss_bytes
from nexus_raft.witness.node import WitnessNode
from nexus_raft.witness.service import WitnessFrontend
from nexus_raft.witness.status import WitnessStatus

__all__ = [
    "WitnessFrontend",
    "WitnessNode",
    "WitnessStatus",
    "check_witness_config",
    "disk_bytes",
    "rss_bytes",
    "witness_config",
]
