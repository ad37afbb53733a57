"""One simulated member: its core, its durable storage, its volatile state machine."""

from __future__ import annotations

from nexus_raft.consensus.core.membership import apply_conf_change
from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import ConfChange, Entry, EntryType, Role
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


def fewest_voters(m: SimNode, lo: int) -> int:
    """Fewest voters of any configuration in effect in ``m``'s log at index ``lo`` or later.

    A leader commits with its newest configuration, which takes effect when
    appended, so entries from ``lo`` on were committed by one of these; by the
    time the commit is persisted the newest may already hold a later change
    (seed 17740: a removal down to one voter commits the tail on the leader's
    copy alone, then a witness is added before that Ready is persisted).
    """
    st = m.storage
    cs = st.snapshot().conf_state
    fewest = len(m.raft.conf_state.voters) if m.raft is not None else len(cs.voters)
    for e in st.entries(st.first_index(), st.last_index() + 1):
        if e.type is EntryType.CONF_CHANGE and e.data is not None:
            cs = apply_conf_change(cs, ConfChange.decode(e.data))
        if e.index >= lo:
            fewest = min(fewest, len(cs.voters))
    return fewest


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
