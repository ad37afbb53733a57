"""The client KV wire contract (``kv.proto``) as seen by the service and the client.

This is the one place the KV service and :class:`~nexus_raft.kv.client.client.Client`
meet the generated ``kv_pb2`` code, and the one place response error codes are
mapped to and from :class:`~nexus_raft.errors.NexusRaftError` subclasses, so
the server's exception -> code mapping and the client's code -> exception
mapping cannot drift apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_raft.errors import (
    ClusterMismatch,
    Compacted,
    InvalidArgument,
    NexusRaftError,
    NotLeader,
    ProposalDropped,
    Timeout,
    TooLarge,
    Unavailable,
)
from nexus_raft.transport._generated import kv_pb2, kv_pb2_grpc

__all__ = [
    "RETRYABLE_CODES",
    "error_from_exception",
    "exception_from_error",
    "kv_pb2",
    "kv_pb2_grpc",
]

OK = kv_pb2.OK
NOT_LEADER = kv_pb2.NOT_LEADER
UNAVAILABLE = kv_pb2.UNAVAILABLE
INVALID_ARGUMENT = kv_pb2.INVALID_ARGUMENT
TOO_LARGE = kv_pb2.TOO_LARGE
TIMEOUT = kv_pb2.TIMEOUT
CLUSTER_MISMATCH = kv_pb2.CLUSTER_MISMATCH
COMPACTED = kv_pb2.COMPACTED
INTERNAL = kv_pb2.INTERNAL

RETRYABLE_CODES: frozenset[int] = frozenset({NOT_LEADER, UNAVAILABLE, TIMEOUT})
"""Codes after which the same request (same client_id/seq) may be sent again.

A TIMEOUT write may or may not have been applied; retrying it is still safe
because the state machine's session table answers a repeated (client_id, seq)
with the stored result instead of applying it twice."""


def code_name(code: int) -> str:
    """Readable name of an ``ErrorCode`` value (``"NOT_LEADER"``)."""
    try:
        return str(kv_pb2.ErrorCode.Name(code))
    except ValueError:
        return f"code {code}"


def error_from_exception(exc: BaseException) -> Any:
    """Map an exception raised while serving a request to a ``kv_pb2.Error``.

    The order matters: ``TooLarge`` before ``InvalidArgument`` (subclass),
    ``Timeout`` before the generic ``TimeoutError``.
    """
    if isinstance(exc, NotLeader):
        return kv_pb2.Error(
            code=NOT_LEADER,
            message=str(exc),
            leader_id=exc.leader_id or 0,
            leader_address=exc.leader_address or "",
        )
    if isinstance(exc, TooLarge):
        return kv_pb2.Error(code=TOO_LARGE, message=str(exc))
    if isinstance(exc, InvalidArgument):
        return kv_pb2.Error(code=INVALID_ARGUMENT, message=str(exc))
    if isinstance(exc, ClusterMismatch):
        return kv_pb2.Error(code=CLUSTER_MISMATCH, message=str(exc))
    if isinstance(exc, Compacted):
        return kv_pb2.Error(code=COMPACTED, message=str(exc))
    if isinstance(exc, (Timeout, asyncio.TimeoutError, TimeoutError)):
        return kv_pb2.Error(code=TIMEOUT, message=str(exc) or "request timed out on the server")
    if isinstance(exc, (Unavailable, ProposalDropped)):
        return kv_pb2.Error(code=UNAVAILABLE, message=str(exc) or type(exc).__name__)
    if isinstance(exc, NexusRaftError):
        # Other deliberate errors (storage closed during shutdown, transport
        # failure while forwarding a read index, ...): another member may succeed.
        return kv_pb2.Error(code=UNAVAILABLE, message=f"{type(exc).__name__}: {exc}")
    return kv_pb2.Error(code=INTERNAL, message=f"{type(exc).__name__}: {exc}")


def exception_from_error(error: Any, *, where: str = "") -> NexusRaftError:
    """Map a non-OK ``kv_pb2.Error`` to the exception the client raises.

    ``where`` (an endpoint) is added to the message so a user can tell which
    member answered.
    """
    code = int(error.code)
    prefix = f"{where}: " if where else ""
    message = f"{prefix}{error.message or code_name(code)}"
    if code == NOT_LEADER:
        return NotLeader(
            message,
            leader_id=int(error.leader_id) or None,
            leader_address=str(error.leader_address) or None,
        )
    if code == TOO_LARGE:
        return TooLarge(message)
    if code == INVALID_ARGUMENT:
        return InvalidArgument(message)
    if code == CLUSTER_MISMATCH:
        return ClusterMismatch(message)
    if code == COMPACTED:
        return Compacted(message)
    if code == TIMEOUT:
        return Timeout(message)
    if code == UNAVAILABLE:
        return Unavailable(message)
    return NexusRaftError(f"{prefix}internal error: {error.message or code_name(code)}")
