from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("cluster_id", "topic")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    topic: str
    def __init__(self, cluster_id: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class Published(_message.Message):
    __slots__ = ("topic", "seq", "payload", "dropped")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    topic: str
    seq: int
    payload: bytes
    dropped: int
    def __init__(self, topic: _Optional[str] = ..., seq: _Optional[int] = ..., payload: _Optional[bytes] = ..., dropped: _Optional[int] = ...) -> None: ...
