"""RaftHandler: what a RaftServer delegates peer requests to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from nexus_raft.transport._generated import raft_pb2 as pb

__all__ = ["HANDLER_METHODS", "RaftHandler"]

HANDLER_METHODS = (
    "request_vote",
    "append_entries",
    "install_snapshot",
    "timeout_now",
    "read_index",
)
"""The methods a handler may have; it needs at least one (RaftServer checks at construction).

A method the handler does not define (``forward`` included) answers
UNIMPLEMENTED, which the caller sees as
:class:`~nexus_raft.transport.errors.Unimplemented`."""


@runtime_checkable
class RaftHandler(Protocol):
    """The receiving side of peer traffic; every method is a coroutine.

    Requests reach the handler only after the server checked their cluster
    id. An exception raised by a method is logged and answered to the peer as
    an error (the peer sees :class:`~nexus_raft.transport.errors.RemoteError`);
    it never stops the server.
    """

    async def request_vote(self, request: pb.VoteRequest) -> pb.VoteResponse:
        """Answer a RequestVote / PreVote."""
        ...

    async def append_entries(self, request: pb.AppendRequest) -> pb.AppendResponse:
        """Answer an AppendEntries or heartbeat (unary or from the stream).

        On one stream, calls start in arrival order and their responses are
        sent in that order. Up to ``RaftServer(stream_window=...)`` calls of
        one stream may be in progress at once (pipelining: e.g. several
        appends waiting on one fsync); asyncio runs each call up to its first
        ``await`` in arrival order, so work done before the first ``await``
        happens in arrival order. With ``stream_window=1`` calls never overlap.
        """
        ...

    async def install_snapshot(
        self, meta: pb.SnapshotMeta, chunks: AsyncIterator[bytes]
    ) -> pb.SnapshotAck:
        """Receive a snapshot: ``meta`` first, then its data from ``chunks``.

        ``chunks`` ends normally only when the stream was complete and its
        size and crc32 matched; otherwise it raises
        :class:`~nexus_raft.transport.errors.SnapshotCorrupted` (let it
        propagate, or catch it to clean up; the peer is told the snapshot
        was rejected either way).
        """
        ...

    async def timeout_now(self, request: pb.TimeoutNowRequest) -> pb.TimeoutNowResponse:
        """Leadership transfer: start an election at once."""
        ...

    async def read_index(self, request: pb.ReadIndexRequest) -> pb.ReadIndexResponse:
        """A follower forwards a read-index request to this node (the leader)."""
        ...

    async def forward(self, request: pb.ForwardRequest) -> pb.ForwardResponse:
        """Optional. A follower hands a client request to this node (the leader)."""
        ...
