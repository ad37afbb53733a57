"""How the etcd front end's writes travel through the Raft log, and their results.

A command is ``0xE7 kind:u8`` followed by the etcd request message itself
(protobuf, as the client sent it after the front end's checks): etcd's
messages are a stable wire format, and the state machine parses them with
the same generated code. A result is ``0xE8 code:u8 revision:u64`` followed
by the response message without its header (code OK) or a UTF-8 error
detail. The front end adds the header.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from nexus_raft.errors import InvalidCommand
from nexus_raft.transport._generated.etcd import rpc_pb2

__all__ = ["ETCD_MAGIC", "Code", "Kind", "decode_result", "encode_command", "encode_result"]

ETCD_MAGIC = 0xE7
_RESULT_MAGIC = 0xE8
_RESULT = struct.Struct(">BBQ")


class Kind(enum.IntEnum):
    """Which etcd request a command carries."""

    PUT = 1
    DELETE_RANGE = 2
    TXN = 3
    COMPACT = 4
    LEASE_GRANT = 5
    LEASE_REVOKE = 6


REQUEST_TYPES: dict[Kind, Any] = {
    Kind.PUT: rpc_pb2.PutRequest,
    Kind.DELETE_RANGE: rpc_pb2.DeleteRangeRequest,
    Kind.TXN: rpc_pb2.TxnRequest,
    Kind.COMPACT: rpc_pb2.CompactionRequest,
    Kind.LEASE_GRANT: rpc_pb2.LeaseGrantRequest,
    Kind.LEASE_REVOKE: rpc_pb2.LeaseRevokeRequest,
}

RESPONSE_TYPES: dict[Kind, Any] = {
    Kind.PUT: rpc_pb2.PutResponse,
    Kind.DELETE_RANGE: rpc_pb2.DeleteRangeResponse,
    Kind.TXN: rpc_pb2.TxnResponse,
    Kind.COMPACT: rpc_pb2.CompactionResponse,
    Kind.LEASE_GRANT: rpc_pb2.LeaseGrantResponse,
    Kind.LEASE_REVOKE: rpc_pb2.LeaseRevokeResponse,
}


class Code(enum.IntEnum):
    """Why an etcd command failed at apply time (OK: it did not)."""

    OK = 0
    MALFORMED = 1  # not a decodable etcd command (a bug or a corrupt entry)
    KEY_NOT_FOUND = 2  # ignore_value/ignore_lease on a missing key
    LEASE_NOT_FOUND = 3
    LEASE_EXISTS = 4
    COMPACTED = 5
    FUTURE_REV = 6
    TOO_LARGE = 7  # a value over the state machine's limit
    INVALID = 8  # a request the front end should have refused (duplicate key, ...)


def encode_command(kind: Kind, request: Any) -> bytes:
    """The log payload for ``request`` (an etcd request message of ``kind``)."""
    body: bytes = request.SerializeToString()
    return bytes((ETCD_MAGIC, int(kind))) + body


def decode_command(raw: bytes) -> tuple[Kind, Any]:
    """Inverse of :func:`encode_command`; :class:`InvalidCommand` for anything else."""
    if len(raw) < 2 or raw[0] != ETCD_MAGIC:
        raise InvalidCommand("not an etcd command")
    try:
        kind = Kind(raw[1])
    except ValueError:
        raise InvalidCommand(f"unknown etcd command kind {raw[1]}") from None
    try:
        return kind, REQUEST_TYPES[kind].FromString(raw[2:])
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InvalidCommand(f"undecodable etcd {kind.name} request: {exc}") from None


def encode_result(code: Code, revision: int, payload: bytes = b"") -> bytes:
    """A result: ``payload`` is the serialized response (OK) or an error detail."""
    return _RESULT.pack(_RESULT_MAGIC, int(code), revision) + payload


def decode_result(raw: bytes) -> tuple[Code, int, bytes]:
    """Inverse of :func:`encode_result`: (code, revision after the command, payload)."""
    if len(raw) < _RESULT.size or raw[0] != _RESULT_MAGIC:
        raise InvalidCommand("not an etcd command result")
    _, code, revision = _RESULT.unpack_from(raw)
    try:
        return Code(code), revision, raw[_RESULT.size :]
    except ValueError:
        raise InvalidCommand(f"unknown etcd result code {code}") from None
