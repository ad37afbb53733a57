"""Deterministic Raft core: no I/O, no clocks, no global randomness.

The public surface: :class:`Raft` (fed ticks, messages and requests, hands out
:class:`Ready`), :class:`Config`, the storage protocol :class:`LogStorage` and
its in-memory implementation :class:`MemoryStorage`, and the values of
``messages`` (entries, configuration, messages, outcomes).

May import: the standard library's pure modules and :mod:`nexus_raft.errors`;
never asyncio, grpc, plyvel, time, threading or sockets (randomness comes
from an injected ``random.Random``).
"""

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.log import InvariantViolation
from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    NONE,
    Accepted,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemberKind,
    Message,
    Outcome,
    ReadState,
    Ready,
    Rejected,
    RejectReason,
    Role,
    SnapshotMeta,
    SoftState,
)
from nexus_raft.consensus.core.progress import ProgressState
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.core.status import PeerProgress, Status
from nexus_raft.consensus.core.storage import LogCompacted, LogStorage, LogUnavailable

__all__ = [
    "NONE",
    "Accepted",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryType",
    "HardState",
    "InvariantViolation",
    "LogCompacted",
    "LogStorage",
    "LogUnavailable",
    "MemberKind",
    "MemoryStorage",
    "Message",
    "Outcome",
    "PeerProgress",
    "ProgressState",
    "Raft",
    "ReadState",
    "Ready",
    "Rejected",
    "RejectReason",
    "Role",
    "SnapshotMeta",
    "SoftState",
    "Status",
]
