"""The stable-log interface the core reads from (etcd-io/raft's ``Storage``).

The core never writes to it: the caller persists ``Ready.entries`` /
``Ready.hard_state`` / ``Ready.snapshot`` and then calls ``advance()``. The core
reads stable entries back through this protocol (to send them to followers,
to check terms). ``nexus_raft.consensus.log.store.LogStore`` implements it on
LevelDB; :class:`MemoryStorage` (``core/memory_storage.py``) implements it in
memory for the simulator and tests.
"""

from __future__ import annotations

from typing import Protocol

from nexus_raft.consensus.core.messages import ConfState, Entry, HardState, SnapshotMeta
from nexus_raft.errors import ConsensusError


class LogCompacted(ConsensusError):
    """The requested index is at or below the last snapshot: use the snapshot."""


class LogUnavailable(ConsensusError):
    """The requested index is beyond the stable log."""


class LogStorage(Protocol):
    """Read side of the durable log.

    Invariants: ``first_index() == snapshot().index + 1``;
    ``last_index() >= snapshot().index``; ``term(snapshot().index)`` is the
    snapshot's term (the one compacted index whose term is still known).
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the configuration as of the stable log."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one if any, then stop before ``max_bytes``.

        Raises LogCompacted if lo <= snapshot index, LogUnavailable if hi > last+1.
        """
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (LogCompacted / LogUnavailable as above)."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> SnapshotMeta:
        """Metadata of the newest snapshot (index 0 when there is none)."""
        ...
