from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OK: _ClassVar[ErrorCode]
    NOT_LEADER: _ClassVar[ErrorCode]
    UNAVAILABLE: _ClassVar[ErrorCode]
    INVALID_ARGUMENT: _ClassVar[ErrorCode]
    TOO_LARGE: _ClassVar[ErrorCode]
    TIMEOUT: _ClassVar[ErrorCode]
    CLUSTER_MISMATCH: _ClassVar[ErrorCode]
    COMPACTED: _ClassVar[ErrorCode]
    INTERNAL: _ClassVar[ErrorCode]
OK: ErrorCode
NOT_LEADER: ErrorCode
UNAVAILABLE: ErrorCode
INVALID_ARGUMENT: ErrorCode
TOO_LARGE: ErrorCode
TIMEOUT: ErrorCode
CLUSTER_MISMATCH: ErrorCode
COMPACTED: ErrorCode
INTERNAL: ErrorCode

class Error(_message.Message):
    __slots__ = ("code", "message", "leader_id", "leader_address")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    leader_id: int
    leader_address: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("cluster_id", "key", "value", "client_id", "seq")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    key: bytes
    value: bytes
    client_id: int
    seq: int
    def __init__(self, cluster_id: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., client_id: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("error", "revision", "had_prev", "prev_value")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HAD_PREV_FIELD_NUMBER: _ClassVar[int]
    PREV_VALUE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    revision: int
    had_prev: bool
    prev_value: bytes
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., revision: _Optional[int] = ..., had_prev: _Optional[bool] = ..., prev_value: _Optional[bytes] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("cluster_id", "key", "serializable")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SERIALIZABLE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    key: bytes
    serializable: bool
    def __init__(self, cluster_id: _Optional[str] = ..., key: _Optional[bytes] = ..., serializable: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("error", "found", "value", "revision")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    found: bool
    value: bytes
    revision: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., found: _Optional[bool] = ..., value: _Optional[bytes] = ..., revision: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("cluster_id", "key", "client_id", "seq")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    key: bytes
    client_id: int
    seq: int
    def __init__(self, cluster_id: _Optional[str] = ..., key: _Optional[bytes] = ..., client_id: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("error", "deleted", "revision", "prev_value")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PREV_VALUE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    deleted: bool
    revision: int
    prev_value: bytes
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., deleted: _Optional[bool] = ..., revision: _Optional[int] = ..., prev_value: _Optional[bytes] = ...) -> None: ...

class CasRequest(_message.Message):
    __slots__ = ("cluster_id", "key", "expect_absent", "expected", "delete", "new_value", "client_id", "seq")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECT_ABSENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    NEW_VALUE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    key: bytes
    expect_absent: bool
    expected: bytes
    delete: bool
    new_value: bytes
    client_id: int
    seq: int
    def __init__(self, cluster_id: _Optional[str] = ..., key: _Optional[bytes] = ..., expect_absent: _Optional[bool] = ..., expected: _Optional[bytes] = ..., delete: _Optional[bool] = ..., new_value: _Optional[bytes] = ..., client_id: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class CasResponse(_message.Message):
    __slots__ = ("error", "succeeded", "revision", "had_prev", "prev_value")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HAD_PREV_FIELD_NUMBER: _ClassVar[int]
    PREV_VALUE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    succeeded: bool
    revision: int
    had_prev: bool
    prev_value: bytes
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., succeeded: _Optional[bool] = ..., revision: _Optional[int] = ..., had_prev: _Optional[bool] = ..., prev_value: _Optional[bytes] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("cluster_id", "prefix", "limit", "serializable")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SERIALIZABLE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    prefix: bytes
    limit: int
    serializable: bool
    def __init__(self, cluster_id: _Optional[str] = ..., prefix: _Optional[bytes] = ..., limit: _Optional[int] = ..., serializable: _Optional[bool] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("error", "keys", "revision")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    revision: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ..., revision: _Optional[int] = ...) -> None: ...

class PrefixesRequest(_message.Message):
    __slots__ = ("cluster_id", "prefix", "serializable")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SERIALIZABLE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    prefix: bytes
    serializable: bool
    def __init__(self, cluster_id: _Optional[str] = ..., prefix: _Optional[bytes] = ..., serializable: _Optional[bool] = ...) -> None: ...

class PrefixesResponse(_message.Message):
    __slots__ = ("error", "prefixes", "revision")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    prefixes: _containers.RepeatedScalarFieldContainer[bytes]
    revision: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., prefixes: _Optional[_Iterable[bytes]] = ..., revision: _Optional[int] = ...) -> None: ...

class BatchOp(_message.Message):
    __slots__ = ("put", "delete", "cas", "get")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    put: PutRequest
    delete: DeleteRequest
    cas: CasRequest
    get: GetRequest
    def __init__(self, put: _Optional[_Union[PutRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., cas: _Optional[_Union[CasRequest, _Mapping]] = ..., get: _Optional[_Union[GetRequest, _Mapping]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("put", "delete", "cas", "get")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    put: PutResponse
    delete: DeleteResponse
    cas: CasResponse
    get: GetResponse
    def __init__(self, put: _Optional[_Union[PutResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ..., cas: _Optional[_Union[CasResponse, _Mapping]] = ..., get: _Optional[_Union[GetResponse, _Mapping]] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("cluster_id", "ops")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    ops: _containers.RepeatedCompositeFieldContainer[BatchOp]
    def __init__(self, cluster_id: _Optional[str] = ..., ops: _Optional[_Iterable[_Union[BatchOp, _Mapping]]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("error", "results")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...

class PipelineRequest(_message.Message):
    __slots__ = ("id", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    batch: BatchRequest
    def __init__(self, id: _Optional[int] = ..., batch: _Optional[_Union[BatchRequest, _Mapping]] = ...) -> None: ...

class PipelineResponse(_message.Message):
    __slots__ = ("id", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    batch: BatchResponse
    def __init__(self, id: _Optional[int] = ..., batch: _Optional[_Union[BatchResponse, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("cluster_id", "prefix", "start_revision")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    prefix: bytes
    start_revision: int
    def __init__(self, cluster_id: _Optional[str] = ..., prefix: _Optional[bytes] = ..., start_revision: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("revision", "key", "deleted", "value")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    key: bytes
    deleted: bool
    value: bytes
    def __init__(self, revision: _Optional[int] = ..., key: _Optional[bytes] = ..., deleted: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("error", "events", "revision")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    revision: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("id", "address", "kind", "role", "match", "payload_floor", "last_contact_seconds", "lag", "health", "name", "client_urls")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FLOOR_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_URLS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    kind: str
    role: str
    match: int
    payload_floor: int
    last_contact_seconds: float
    lag: int
    health: str
    name: str
    client_urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ..., kind: _Optional[str] = ..., role: _Optional[str] = ..., match: _Optional[int] = ..., payload_floor: _Optional[int] = ..., last_contact_seconds: _Optional[float] = ..., lag: _Optional[int] = ..., health: _Optional[str] = ..., name: _Optional[str] = ..., client_urls: _Optional[_Iterable[str]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("cluster_id", "confirm_leader")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_LEADER_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    confirm_leader: bool
    def __init__(self, cluster_id: _Optional[str] = ..., confirm_leader: _Optional[bool] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("error", "id", "role", "term", "leader_id", "leader_address", "commit", "applied", "last_index", "cluster_id", "revision", "members", "snapshot_index", "version", "db_size", "errors", "startup_commit", "ready", "leader_confirmed", "event_loop")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DB_SIZE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    STARTUP_COMMIT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    LEADER_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    EVENT_LOOP_FIELD_NUMBER: _ClassVar[int]
    error: Error
    id: int
    role: str
    term: int
    leader_id: int
    leader_address: str
    commit: int
    applied: int
    last_index: int
    cluster_id: str
    revision: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    snapshot_index: int
    version: str
    db_size: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    startup_commit: int
    ready: bool
    leader_confirmed: bool
    event_loop: str
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., id: _Optional[int] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., leader_address: _Optional[str] = ..., commit: _Optional[int] = ..., applied: _Optional[int] = ..., last_index: _Optional[int] = ..., cluster_id: _Optional[str] = ..., revision: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., snapshot_index: _Optional[int] = ..., version: _Optional[str] = ..., db_size: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ..., startup_commit: _Optional[int] = ..., ready: _Optional[bool] = ..., leader_confirmed: _Optional[bool] = ..., event_loop: _Optional[str] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class MembersResponse(_message.Message):
    __slots__ = ("error", "leader_id", "members")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    leader_id: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., leader_id: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("cluster_id", "id", "address", "role")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    id: int
    address: str
    role: str
    def __init__(self, cluster_id: _Optional[str] = ..., id: _Optional[int] = ..., address: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("cluster_id", "id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    id: int
    def __init__(self, cluster_id: _Optional[str] = ..., id: _Optional[int] = ...) -> None: ...

class TransferLeaderRequest(_message.Message):
    __slots__ = ("cluster_id", "id")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    id: int
    def __init__(self, cluster_id: _Optional[str] = ..., id: _Optional[int] = ...) -> None: ...

class AdminResponse(_message.Message):
    __slots__ = ("error",)
    ERROR_FIELD_NUMBER: _ClassVar[int]
    error: Error
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("cluster_id", "leader")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    leader: bool
    def __init__(self, cluster_id: _Optional[str] = ..., leader: _Optional[bool] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("error", "index")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    error: Error
    index: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...

class KeyValue(_message.Message):
    __slots__ = ("key", "value", "revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    revision: int
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., revision: _Optional[int] = ...) -> None: ...

class RangeRequest(_message.Message):
    __slots__ = ("cluster_id", "prefix", "limit", "keys_only", "serializable", "start_after")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    KEYS_ONLY_FIELD_NUMBER: _ClassVar[int]
    SERIALIZABLE_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    prefix: bytes
    limit: int
    keys_only: bool
    serializable: bool
    start_after: bytes
    def __init__(self, cluster_id: _Optional[str] = ..., prefix: _Optional[bytes] = ..., limit: _Optional[int] = ..., keys_only: _Optional[bool] = ..., serializable: _Optional[bool] = ..., start_after: _Optional[bytes] = ...) -> None: ...

class RangeResponse(_message.Message):
    __slots__ = ("error", "kvs", "revision", "more")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KVS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    kvs: _containers.RepeatedCompositeFieldContainer[KeyValue]
    revision: int
    more: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., kvs: _Optional[_Iterable[_Union[KeyValue, _Mapping]]] = ..., revision: _Optional[int] = ..., more: _Optional[bool] = ...) -> None: ...

class DeletePrefixRequest(_message.Message):
    __slots__ = ("cluster_id", "prefix")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    prefix: bytes
    def __init__(self, cluster_id: _Optional[str] = ..., prefix: _Optional[bytes] = ...) -> None: ...

class DeletePrefixResponse(_message.Message):
    __slots__ = ("error", "deleted", "revision")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    error: Error
    deleted: int
    revision: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., deleted: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class BackupChunk(_message.Message):
    __slots__ = ("error", "data")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    error: Error
    data: bytes
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
