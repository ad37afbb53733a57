"""One simulated member: its core, its durable storage, its volatile state machine."""

from __future__ import annotations

from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import Entry, EntryType, Role
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from tests.sim.checker import ReadIssue, Violation
from tests.sim.kv import KV


class SimNode:
    """One member: its core, its durable storage and its (volatile) state machine."""

    __slots__ = (
        "alive",
        "applied",
        "deferred",
        "floor",
        "id",
        "kv",
        "leader_term",
        "raft",
        "reads",
        "removed",
        "role",
        "storage",
        "term",
        "witness",
    )

    def __init__(self, node_id: int, storage: MemoryStorage, witness: bool) -> None:
        self.id = node_id
        self.storage = storage  # survives crashes: it is the disk
        self.witness = witness
        self.raft: Raft | None = None
        self.kv = KV()
        self.applied = 0
        self.alive = False
        self.removed = False  # removal committed: shut down for good
        self.deferred = False
        self.role = Role.FOLLOWER
        self.term = 0
        self.leader_term = 0  # term it led in when it last persisted a Ready (0: not leader)
        self.floor = 0  # highest payload floor this witness was told
        self.reads: list[tuple[bytes, ReadIssue]] = []  # released, waiting for apply

    def __repr__(self) -> str:
        state = "up" if self.alive else ("removed" if self.removed else "down")
        kind = "witness" if self.witness else "full"
        return f"n{self.id}({kind},{state},{self.role.value},t{self.term},applied {self.applied})"


def holds(m: SimNode, index: int, term: int) -> bool:
    """Whether ``m`` durably holds the payload of entry (index, term)."""
    st = m.storage
    if index <= st.snapshot().index:
        return not m.witness  # a full member's snapshot holds the data
    if index > st.last_index():
        return False
    e = st.entries(index, index + 1)[0]
    return e.term == term and e.data is not None


def check_floor(n: SimNode, ents: tuple[Entry, ...]) -> None:
    """A witness must not persist a payload at or below the floor it was told."""
    for e in ents:
        if e.index > n.floor:
            break
        if e.type is EntryType.NORMAL and e.data:
            raise Violation(
                "witness payload floor",
                f"witness {n.id} was told floor {n.floor} but persists entry {e.index} "
                f"with its payload",
            )


def durable_prefix(m: SimNode, leader: SimNode, commit: int) -> int | None:
    """How far (up to ``commit``) full member ``m`` durably holds the leader's log.

    Its snapshot holds everything up to its index; past it, log matching
    makes the agreeing part a prefix, found by bisection on terms. None when
    the leader's log no longer tells (compacted there).
    """
    st, lst = m.storage, leader.storage
    lo = min(st.snapshot().index, commit)
    hi = min(commit, st.last_index())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            agree = st.term(mid) == lst.term(mid)
        except (LogCompacted, LogUnavailable):
            return None
        if agree:
            lo = mid
        else:
            hi = mid - 1
    return lo
