"""The one mapping from gRPC statuses to TransportError subclasses (pure logic)."""

from __future__ import annotations

import grpc
import pytest

from nexus_raft.errors import NexusRaftError, TransportError
from nexus_raft.transport import (
    ClusterMismatch,
    DeadlineExceeded,
    MalformedMessage,
    PayloadTooLarge,
    PeerUnavailable,
    RemoteError,
    SnapshotRejected,
)
from nexus_raft.transport.errors import ERROR_KEY, from_rpc_error


class _FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    """Stands in for grpc.aio.AioRpcError: the same four accessors."""

    def __init__(
        self, code: grpc.StatusCode, details: str = "", trailing: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing


@pytest.mark.parametrize(
    ("code", "trailing", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, (), PeerUnavailable),
        (grpc.StatusCode.UNAUTHENTICATED, (), PeerUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, (), DeadlineExceeded),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, (), PayloadTooLarge),
        (grpc.StatusCode.INVALID_ARGUMENT, (), MalformedMessage),
        (grpc.StatusCode.INTERNAL, (), RemoteError),
        (grpc.StatusCode.UNKNOWN, (), RemoteError),
        (grpc.StatusCode.FAILED_PRECONDITION, ((ERROR_KEY, "cluster-mismatch"),), ClusterMismatch),
        (grpc.StatusCode.DATA_LOSS, ((ERROR_KEY, "snapshot-rejected"),), SnapshotRejected),
        (grpc.StatusCode.INVALID_ARGUMENT, ((ERROR_KEY, "snapshot-rejected"),), SnapshotRejected),
    ],
)
def test_mapping(
    code: grpc.StatusCode, trailing: tuple[tuple[str, str], ...], expected: type
) -> None:
    err = from_rpc_error(_FakeRpcError(code, "why", trailing), peer="h:1", method="RequestVote")
    assert type(err) is expected
    assert isinstance(err, TransportError) and isinstance(err, NexusRaftError)
    assert (err.peer, err.method, err.status) == ("h:1", "RequestVote", code.name)  # type: ignore[attr-defined]
    assert "RequestVote to h:1 failed" in str(err) and "why" in str(err)


def test_deadline_is_also_a_timeout_error() -> None:
    assert issubclass(DeadlineExceeded, TimeoutError)
