from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL: _ClassVar[EntryType]
    CONF_CHANGE: _ClassVar[EntryType]

class ForwardCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORWARD_OK: _ClassVar[ForwardCode]
    FORWARD_NOT_LEADER: _ClassVar[ForwardCode]
    FORWARD_UNAVAILABLE: _ClassVar[ForwardCode]
    FORWARD_TIMEOUT: _ClassVar[ForwardCode]
    FORWARD_TOO_LARGE: _ClassVar[ForwardCode]
    FORWARD_DROPPED: _ClassVar[ForwardCode]
    FORWARD_INVALID: _ClassVar[ForwardCode]
    FORWARD_FAILED: _ClassVar[ForwardCode]
NORMAL: EntryType
CONF_CHANGE: EntryType
FORWARD_OK: ForwardCode
FORWARD_NOT_LEADER: ForwardCode
FORWARD_UNAVAILABLE: ForwardCode
FORWARD_TIMEOUT: ForwardCode
FORWARD_TOO_LARGE: ForwardCode
FORWARD_DROPPED: ForwardCode
FORWARD_INVALID: ForwardCode
FORWARD_FAILED: ForwardCode

class Entry(_message.Message):
    __slots__ = ("index", "term", "type", "data", "has_data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    HAS_DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    type: EntryType
    data: bytes
    has_data: bool
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., type: _Optional[_Union[EntryType, str]] = ..., data: _Optional[bytes] = ..., has_data: _Optional[bool] = ...) -> None: ...

class VoteRequest(_message.Message):
    __slots__ = ("cluster_id", "term", "candidate_id", "to", "last_log_index", "last_log_term", "pre_vote", "transfer")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    PRE_VOTE_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    term: int
    candidate_id: int
    to: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool
    transfer: bool
    def __init__(self, cluster_id: _Optional[str] = ..., term: _Optional[int] = ..., candidate_id: _Optional[int] = ..., to: _Optional[int] = ..., last_log_index: _Optional[int] = ..., last_log_term: _Optional[int] = ..., pre_vote: _Optional[bool] = ..., transfer: _Optional[bool] = ...) -> None: ...

class VoteResponse(_message.Message):
    __slots__ = ("term", "vote_granted", "from_id", "pre_vote")
    TERM_FIELD_NUMBER: _ClassVar[int]
    VOTE_GRANTED_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    PRE_VOTE_FIELD_NUMBER: _ClassVar[int]
    term: int
    vote_granted: bool
    from_id: int
    pre_vote: bool
    def __init__(self, term: _Optional[int] = ..., vote_granted: _Optional[bool] = ..., from_id: _Optional[int] = ..., pre_vote: _Optional[bool] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("cluster_id", "term", "leader_id", "to", "prev_log_index", "prev_log_term", "entries", "leader_commit", "payload_floor", "heartbeat", "context")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    PREV_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREV_LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LEADER_COMMIT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FLOOR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    term: int
    leader_id: int
    to: int
    prev_log_index: int
    prev_log_term: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    leader_commit: int
    payload_floor: int
    heartbeat: bool
    context: bytes
    def __init__(self, cluster_id: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., to: _Optional[int] = ..., prev_log_index: _Optional[int] = ..., prev_log_term: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., leader_commit: _Optional[int] = ..., payload_floor: _Optional[int] = ..., heartbeat: _Optional[bool] = ..., context: _Optional[bytes] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("term", "from_id", "reject", "index", "reject_hint", "hint_term", "heartbeat", "context", "payload_index")
    TERM_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_FIELD_NUMBER: _ClassVar[int]
    HINT_TERM_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEX_FIELD_NUMBER: _ClassVar[int]
    term: int
    from_id: int
    reject: bool
    index: int
    reject_hint: int
    hint_term: int
    heartbeat: bool
    context: bytes
    payload_index: int
    def __init__(self, term: _Optional[int] = ..., from_id: _Optional[int] = ..., reject: _Optional[bool] = ..., index: _Optional[int] = ..., reject_hint: _Optional[int] = ..., hint_term: _Optional[int] = ..., heartbeat: _Optional[bool] = ..., context: _Optional[bytes] = ..., payload_index: _Optional[int] = ...) -> None: ...

class SnapshotMeta(_message.Message):
    __slots__ = ("cluster_id", "term", "leader_id", "to", "index", "last_term", "voters", "learners", "witnesses")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_TERM_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    WITNESSES_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    term: int
    leader_id: int
    to: int
    index: int
    last_term: int
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    witnesses: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cluster_id: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., to: _Optional[int] = ..., index: _Optional[int] = ..., last_term: _Optional[int] = ..., voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ..., witnesses: _Optional[_Iterable[int]] = ...) -> None: ...

class SnapshotTrailer(_message.Message):
    __slots__ = ("total_size", "crc32")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CRC32_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    crc32: int
    def __init__(self, total_size: _Optional[int] = ..., crc32: _Optional[int] = ...) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("meta", "data", "trailer")
    META_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    meta: SnapshotMeta
    data: bytes
    trailer: SnapshotTrailer
    def __init__(self, meta: _Optional[_Union[SnapshotMeta, _Mapping]] = ..., data: _Optional[bytes] = ..., trailer: _Optional[_Union[SnapshotTrailer, _Mapping]] = ...) -> None: ...

class SnapshotAck(_message.Message):
    __slots__ = ("term", "accepted", "index", "reason")
    TERM_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    term: int
    accepted: bool
    index: int
    reason: str
    def __init__(self, term: _Optional[int] = ..., accepted: _Optional[bool] = ..., index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class TimeoutNowRequest(_message.Message):
    __slots__ = ("cluster_id", "term", "leader_id", "to")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    term: int
    leader_id: int
    to: int
    def __init__(self, cluster_id: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., to: _Optional[int] = ...) -> None: ...

class TimeoutNowResponse(_message.Message):
    __slots__ = ("term", "from_id")
    TERM_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    term: int
    from_id: int
    def __init__(self, term: _Optional[int] = ..., from_id: _Optional[int] = ...) -> None: ...

class ReadIndexRequest(_message.Message):
    __slots__ = ("cluster_id", "term", "from_id", "to", "context")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    term: int
    from_id: int
    to: int
    context: bytes
    def __init__(self, cluster_id: _Optional[str] = ..., term: _Optional[int] = ..., from_id: _Optional[int] = ..., to: _Optional[int] = ..., context: _Optional[bytes] = ...) -> None: ...

class ReadIndexResponse(_message.Message):
    __slots__ = ("term", "index", "context", "reject", "from_id")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    context: bytes
    reject: bool
    from_id: int
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ..., context: _Optional[bytes] = ..., reject: _Optional[bool] = ..., from_id: _Optional[int] = ...) -> None: ...

class ForwardError(_message.Message):
    __slots__ = ("code", "message", "leader_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    code: ForwardCode
    message: str
    leader_id: int
    def __init__(self, code: _Optional[_Union[ForwardCode, str]] = ..., message: _Optional[str] = ..., leader_id: _Optional[int] = ...) -> None: ...

class ForwardPropose(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, commands: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ForwardConfChange(_message.Message):
    __slots__ = ("node_id", "address", "role", "remove")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    address: str
    role: str
    remove: bool
    def __init__(self, node_id: _Optional[int] = ..., address: _Optional[str] = ..., role: _Optional[str] = ..., remove: _Optional[bool] = ...) -> None: ...

class ForwardTransfer(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: int
    def __init__(self, target: _Optional[int] = ...) -> None: ...

class ForwardSnapshot(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForwardCheck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("cluster_id", "from_id", "to", "timeout_ms", "propose", "conf_change", "transfer", "snapshot", "check")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PROPOSE_FIELD_NUMBER: _ClassVar[int]
    CONF_CHANGE_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    from_id: int
    to: int
    timeout_ms: int
    propose: ForwardPropose
    conf_change: ForwardConfChange
    transfer: ForwardTransfer
    snapshot: ForwardSnapshot
    check: ForwardCheck
    def __init__(self, cluster_id: _Optional[str] = ..., from_id: _Optional[int] = ..., to: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., propose: _Optional[_Union[ForwardPropose, _Mapping]] = ..., conf_change: _Optional[_Union[ForwardConfChange, _Mapping]] = ..., transfer: _Optional[_Union[ForwardTransfer, _Mapping]] = ..., snapshot: _Optional[_Union[ForwardSnapshot, _Mapping]] = ..., check: _Optional[_Union[ForwardCheck, _Mapping]] = ...) -> None: ...

class ForwardResult(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: bytes
    error: ForwardError
    def __init__(self, result: _Optional[bytes] = ..., error: _Optional[_Union[ForwardError, _Mapping]] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("term", "from_id", "error", "results", "index", "member", "removed_at", "leader")
    TERM_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    REMOVED_AT_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    term: int
    from_id: int
    error: ForwardError
    results: _containers.RepeatedCompositeFieldContainer[ForwardResult]
    index: int
    member: bool
    removed_at: int
    leader: bool
    def __init__(self, term: _Optional[int] = ..., from_id: _Optional[int] = ..., error: _Optional[_Union[ForwardError, _Mapping]] = ..., results: _Optional[_Iterable[_Union[ForwardResult, _Mapping]]] = ..., index: _Optional[int] = ..., member: _Optional[bool] = ..., removed_at: _Optional[int] = ..., leader: _Optional[bool] = ...) -> None: ...
