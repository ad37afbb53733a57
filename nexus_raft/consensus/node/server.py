"""The receiving side of peer traffic: the transport handler of a RaftNode.

Each request is converted to a core message, stepped through the driver's
inbox, and answered with the core's response to it (the core answers every
request exactly once, after the Ready that carries the answer was persisted).
The transport checked the cluster id before any of this runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from nexus_raft.consensus.core.messages import (
    AppendResponse,
    HeartbeatResponse,
    ReadIndexResponse,
    VoteResponse,
)
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.snapshot import receive_snapshot
from nexus_raft.errors import ConsensusError, NexusRaftError

__all__ = ["PeerHandler"]

_log = logging.getLogger(__name__)


class MisaddressedRequest(ConsensusError):
    """A peer sent a request meant for another node id."""


class PeerHandler:
    """Implements the transport's ``RaftHandler`` protocol on top of a :class:`Driver`."""

    def __init__(self, driver: Driver, staging_dir: Path | None) -> None:
        self._driver = driver
        self._id = driver.id
        self._staging = staging_dir
        self._metrics = driver.metrics

    def _check_to(self, to: int) -> None:
        if to and to != self._id:
            raise MisaddressedRequest(f"request for node {to} reached node {self._id}")

    async def request_vote(self, request: wire.pb.VoteRequest) -> wire.pb.VoteResponse:
        """Step a (pre-)vote request; answer with the core's vote."""
        self._check_to(request.to)
        resp = await self._driver.request(wire.vote_from_pb(request, self._id))
        if not isinstance(resp, VoteResponse):
            raise ConsensusError(f"core answered a vote with {type(resp).__name__}")
        return wire.vote_response_to_pb(resp)

    async def append_entries(self, request: wire.pb.AppendRequest) -> wire.pb.AppendResponse:
        """Step an append or heartbeat; answer once the appended entries are durable."""
        self._check_to(request.to)
        self._metrics.leader_contact = time.monotonic()
        resp = await self._driver.request(wire.append_from_pb(request, self._id))
        if not isinstance(resp, (AppendResponse, HeartbeatResponse)):
            raise ConsensusError(f"core answered an append with {type(resp).__name__}")
        return wire.append_response_to_pb(resp)

    async def install_snapshot(
        self, meta: wire.pb.SnapshotMeta, chunks: AsyncIterator[bytes]
    ) -> wire.pb.SnapshotAck:
        """Stage the data on disk, then step the snapshot; the core decides to install it."""
        self._check_to(meta.to)
        driver = self._driver
        staging = None if driver.witness else self._staging
        try:
            staged = await receive_snapshot(meta.index, chunks, staging, driver.executor)
        except BaseException:
            self._metrics.snapshot_receive_failures += 1
            raise
        old = driver.staged.pop(meta.index, None)
        if old is not None:
            old.discard()
        driver.staged[meta.index] = staged
        try:
            resp = await driver.request(wire.snapshot_from_pb(meta, self._id), timeout=600.0)
        finally:
            # Installed: the restore consumed the file. Otherwise it is of no use.
            if driver.staged.get(meta.index) is staged:
                del driver.staged[meta.index]
            staged.discard()
        if not isinstance(resp, AppendResponse):
            raise ConsensusError(f"core answered a snapshot with {type(resp).__name__}")
        if resp.reject:
            self._metrics.snapshot_receive_failures += 1
        else:
            self._metrics.snapshots_received += 1
        _log.info(
            "node %d: snapshot at %d from %d: %s",
            self._id,
            meta.index,
            meta.leader_id,
            "refused" if resp.reject else f"answered with index {resp.index}",
        )
        return wire.snapshot_ack_to_pb(resp)

    async def timeout_now(self, request: wire.pb.TimeoutNowRequest) -> wire.pb.TimeoutNowResponse:
        """Leadership transfer: step TimeoutNow (the core campaigns at once)."""
        self._check_to(request.to)
        try:
            self._driver.submit(
                lambda: self._driver.raft.step(wire.timeout_now_from_pb(request, self._id))
            )
        except NexusRaftError as exc:
            _log.warning("node %d: TimeoutNow refused: %s", self._id, exc)
            raise
        return wire.pb.TimeoutNowResponse(term=self._driver.term, from_id=self._id)

    async def read_index(self, request: wire.pb.ReadIndexRequest) -> wire.pb.ReadIndexResponse:
        """A follower's forwarded read: answer with the core's read index (or a rejection)."""
        self._check_to(request.to)
        resp = await self._driver.request(wire.read_index_from_pb(request, self._id))
        if not isinstance(resp, ReadIndexResponse):
            raise ConsensusError(f"core answered a read index with {type(resp).__name__}")
        return wire.read_index_response_to_pb(resp)
