"""Values that flow into and out of the Raft core.

Every value here is a frozen, slotted dataclass or an enum: no dicts of
strings. The core never does I/O; the node driver turns these into wire
messages (``consensus/node/wire.py``) and the simulator passes them around as is.

Conventions:
- node ids are positive ints; ``0`` means "none" (no vote, no known leader).
- log indexes start at 1; index 0 / term 0 is the empty log's sentinel.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

NONE = 0
"""The id that means "no node" (no vote cast, no leader known)."""


class Role(enum.Enum):
    """What a node is doing right now (its election state)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class MemberKind(enum.Enum):
    """What a member is in the configuration."""

    VOTER = "voter"
    LEARNER = "learner"
    WITNESS = "witness"


class EntryType(enum.IntEnum):
    """What an entry's payload means."""

    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry.

    ``data is None`` means the payload was withheld (a witness's metadata-only
    copy); ``b""`` is an empty payload (the no-op a new leader appends).
    Configuration entries always carry their payload.
    """

    index: int
    term: int
    type: EntryType = EntryType.NORMAL
    data: bytes | None = b""

    @property
    def has_payload(self) -> bool:
        return self.data is not None

    def size(self) -> int:
        """Bytes this entry costs on the wire, for batching limits."""
        return 24 + (len(self.data) if self.data is not None else 0)

    def metadata_only(self) -> Entry:
        """This entry without its payload (configuration entries keep theirs)."""
        if self.type is EntryType.CONF_CHANGE or self.data is None:
            return self
        return Entry(self.index, self.term, self.type, None)


class ConfChangeType(enum.IntEnum):
    """A single-server membership change."""

    ADD_VOTER = 0  # also promotes a learner to voter
    ADD_LEARNER = 1
    ADD_WITNESS = 2
    REMOVE = 3


_CC = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change; ``context`` carries the member's endpoint (UTF-8)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC.pack(int(self.type), self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) < _CC.size:
            raise ValueError("conf change payload too short")
        kind, node_id = _CC.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[_CC.size :]))


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership. Invariant: ``witnesses <= voters``; learners are disjoint from voters."""

    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()
    witnesses: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not self.witnesses <= self.voters:
            raise ValueError("every witness must be a voter")
        if self.voters & self.learners:
            raise ValueError("a member cannot be both voter and learner")

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.learners

    @property
    def full_voters(self) -> frozenset[int]:
        """Voters that hold payloads and run a state machine."""
        return self.voters - self.witnesses

    def kind(self, node_id: int) -> MemberKind | None:
        if node_id in self.witnesses:
            return MemberKind.WITNESS
        if node_id in self.voters:
            return MemberKind.VOTER
        if node_id in self.learners:
            return MemberKind.LEARNER
        return None


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the caller may want to observe (not persisted)."""

    leader_id: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Describes a state-machine snapshot: everything up to ``index`` is in it."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


# --- messages between nodes ---------------------------------------------------
# Every message has frm, to and term; term 0 means "local / not term-bearing"
# is never used between nodes: all of these carry the sender's current term.


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest:
    """RequestVote (or PreVote when ``pre_vote``; then ``term`` is the term it would use)."""

    frm: int
    to: int
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # sent because of TimeoutNow: bypasses the leader lease


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse:
    frm: int
    to: int
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendRequest:
    """AppendEntries. ``payload_floor``: every full voter holds the payloads of
    entries up to this index, so a witness may drop them."""

    frm: int
    to: int
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    payload_floor: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResponse:
    """Answer to AppendRequest or SnapshotRequest.

    On success ``index`` is the last index now known to match the leader. On
    rejection ``index`` is the rejected ``prev_index`` and ``reject_hint`` /
    ``hint_term`` let the leader skip back (the follower's best guess of a
    matching (index, term)).
    """

    frm: int
    to: int
    term: int
    index: int
    reject: bool = False
    reject_hint: int = 0
    hint_term: int = 0
    # Witness only (0 otherwise): it holds the payload of every uncommitted
    # entry up to this index, so the leader may count it as a payload holder.
    payload_index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Leader liveness; ``context`` is non-empty when it confirms a ReadIndex round."""

    frm: int
    to: int
    term: int
    commit: int = 0
    payload_floor: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatResponse:
    frm: int
    to: int
    term: int
    context: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRequest:
    """Install a snapshot; the node driver streams the state-machine data beside it."""

    frm: int
    to: int
    term: int
    snapshot: SnapshotMeta


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """Leadership transfer: the target should campaign at once."""

    frm: int
    to: int
    term: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexRequest:
    """A follower asks the leader for a read index on behalf of its caller."""

    frm: int
    to: int
    term: int
    context: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexResponse:
    """The leader's answer; ``reject`` when it cannot serve reads (not leader, witness)."""

    frm: int
    to: int
    term: int
    index: int
    context: bytes
    reject: bool = False


Message = (
    VoteRequest
    | VoteResponse
    | AppendRequest
    | AppendResponse
    | Heartbeat
    | HeartbeatResponse
    | SnapshotRequest
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)

MESSAGE_TYPES: tuple[type, ...] = (
    VoteRequest,
    VoteResponse,
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    SnapshotRequest,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
)


# --- outputs to the caller -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read may be served once the local state machine has applied ``index``."""

    index: int
    context: bytes


class RejectReason(enum.Enum):
    """Why the core refused a proposal, read or membership request."""

    NOT_LEADER = "not leader"
    TRANSFERRING = "leadership transfer in progress"
    WITNESS = "a witness serves no proposals or reads"
    CONF_CHANGE_PENDING = "another configuration change is pending"
    LEADER_NOT_READY = "the leader has not yet committed an entry of its term"
    UNSAFE_REMOVAL = "the removal would leave committed entries with one durable copy"
    INVALID_CONF_CHANGE = "invalid configuration change"
    TOO_LARGE = "proposal too large"
    NOT_MEMBER = "no such member"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The proposal was appended at (index, term); it commits if that entry does."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request was refused at once; ``leader_id`` is the known leader or NONE.

    ``detail`` says more in one line where the reason alone would not tell the
    caller what to do (which entries, which members); it takes no part in
    equality.
    """

    reason: RejectReason
    leader_id: int = NONE
    detail: str = field(default="", compare=False, repr=False)


Outcome = Accepted | Rejected


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the caller; hand it back to ``advance()`` when done.

    Order (the persist-before-send rule): write ``snapshot`` (if any), then
    ``entries`` and ``hard_state`` durably in one write; only then send
    ``messages``; apply ``committed_entries`` in order; serve ``read_states``
    once applied reaches their index.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: SnapshotMeta | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    payload_floor: int | None = None  # witness only: drop payloads of entries <= this
    # Contexts of reads (read_index) that will never get a ReadState: the
    # leader stepped down or refused a forwarded request. Fail them at once.
    dropped_reads: tuple[bytes, ...] = ()

    @property
    def must_sync(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None
