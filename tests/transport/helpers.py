"""Shared pieces for transport tests: a recording handler and a server helper.

pytest-asyncio is not a dependency: every test drives its own event loop with
``asyncio.run`` and stops its servers in ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator
from typing import Any

from nexus_raft.transport import (
    AppendRequest,
    AppendResponse,
    NodeAddress,
    RaftServer,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotAck,
    SnapshotMeta,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)

NODE_ID = 2


class RecordingHandler:
    """A handler that answers deterministically and records what it saw.

    * votes are granted iff ``last_log_term >= 1``; the response echoes the term;
    * appends answer ``index = prev_log_index + len(entries)`` and echo
      ``context`` and ``heartbeat``;
    * snapshots are read completely and acknowledged with their crc32 and size
      recorded in ``snapshots``;
    * ``fail_on`` makes the named method raise; ``block`` makes every method
      wait on an event nobody sets (for deadline tests).
    """

    def __init__(self) -> None:
        self.votes: list[VoteRequest] = []
        self.appends: list[AppendRequest] = []
        self.snapshots: list[tuple[SnapshotMeta, int, int]] = []
        self.snapshot_errors: list[BaseException] = []
        self.fail_on: set[str] = set()
        self.block: asyncio.Event | None = None
        self.chunk_seen = asyncio.Event()
        self.snapshot_ended = asyncio.Event()

    async def _gate(self, name: str) -> None:
        if self.block is not None:
            await self.block.wait()
        if name in self.fail_on:
            raise RuntimeError(f"{name} exploded")

    async def request_vote(self, request: VoteRequest) -> VoteResponse:
        await self._gate("request_vote")
        self.votes.append(request)
        return VoteResponse(
            term=request.term,
            vote_granted=request.last_log_term >= 1,
            from_id=NODE_ID,
            pre_vote=request.pre_vote,
        )

    async def append_entries(self, request: AppendRequest) -> AppendResponse:
        self.appends.append(request)  # before the first await: arrival order
        await self._gate("append_entries")
        return AppendResponse(
            term=request.term,
            from_id=NODE_ID,
            index=request.prev_log_index + len(request.entries),
            heartbeat=request.heartbeat,
            context=request.context,
        )

    async def install_snapshot(
        self, meta: SnapshotMeta, chunks: AsyncIterator[bytes]
    ) -> SnapshotAck:
        await self._gate("install_snapshot")
        crc = 0
        size = 0
        try:
            async for chunk in chunks:
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                self.chunk_seen.set()
        except BaseException as exc:  # also CancelledError: a cut-off upload
            self.snapshot_errors.append(exc)
            raise
        finally:
            self.snapshot_ended.set()
        self.snapshots.append((meta, size, crc))
        return SnapshotAck(term=meta.term, accepted=True, index=meta.index)

    async def timeout_now(self, request: TimeoutNowRequest) -> TimeoutNowResponse:
        await self._gate("timeout_now")
        return TimeoutNowResponse(term=request.term, from_id=NODE_ID)

    async def read_index(self, request: ReadIndexRequest) -> ReadIndexResponse:
        await self._gate("read_index")
        return ReadIndexResponse(
            term=request.term, index=42, context=request.context, from_id=NODE_ID
        )


@contextlib.asynccontextmanager
async def serving(handler: Any = None, **kwargs: Any) -> AsyncIterator[tuple[RaftServer, Any]]:
    """Start a RaftServer on 127.0.0.1:0 and stop it on exit."""
    handler = handler if handler is not None else RecordingHandler()
    server = RaftServer(handler, "127.0.0.1:0", **kwargs)
    await server.start()
    try:
        yield server, handler
    finally:
        await server.stop(grace=None)


def address_of(server: RaftServer, node_id: int = NODE_ID) -> NodeAddress:
    """The NodeAddress a client uses to reach ``server``."""
    return NodeAddress(node_id, server.endpoint)
