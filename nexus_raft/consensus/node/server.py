"""The receiving side of peer traffic: the transport handler of a RaftNode.

Each request is converted to a core message, checked at this boundary
(:mod:`~nexus_raft.consensus.node.guard`: membership, term bounds, the shape
a correct leader sends), stepped through the driver's inbox, and answered
with the core's response to it (the core answers every request exactly
once, after the Ready that carries the answer was persisted). A refused
request raises the transport's ``PeerRefused``: the transport answers it at
once (PERMISSION_DENIED) and logs it at WARNING, rate-limited; the core
never sees it. The transport checked the cluster id, and with mutual TLS
the sender's certificate identity, before any of this runs.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from nexus_raft.consensus.core.messages import (
    AppendResponse,
    HeartbeatResponse,
    Message,
    ReadIndexResponse,
    VoteResponse,
)
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.guard import (
    UNPROVEN,
    Refusal,
    append_refusal,
    sender_refusal,
    snapshot_refusal,
    stranger_answer,
    term_refusal,
    timeout_now_refusal,
    transfer_refusal,
    vote_refusal,
)
from nexus_raft.consensus.node.snapshot import receive_snapshot
from nexus_raft.errors import ConsensusError, NexusRaftError
from nexus_raft.transport.errors import PeerRefused
from nexus_raft.transport.ratelimit import LogLimiter

__all__ = ["MismatchedAnswer", "PeerHandler"]

_log = logging.getLogger(__name__)

class MisaddressedRequest(PeerRefused):
    """A peer sent a request meant for another node id."""


class MismatchedAnswer(ConsensusError):
    """The core's answer handed to a peer's request is not the answer to it: of
    another kind, for another peer, or (a read) for another context.

    Never the peer's fault: the driver paired answers with the wrong requests
    (issue #10 item 6 was such a bug). The request fails instead of carrying
    someone else's answer; the node simulator counts any as a violation.
    """


def _mismatch(what: str, resp: Message, sender: int) -> MismatchedAnswer:
    """The error for ``resp`` handed to ``what`` (a request from ``sender``)."""
    return MismatchedAnswer(
        f"core answered {what} from {sender} with a {type(resp).__name__} to {resp.to}"
    )


def _malformed(exc: Exception, sender: int) -> PeerRefused:
    return PeerRefused(f"malformed request: {exc}", kind="malformed", sender=sender)


def _refuse(refusal: Refusal | None, sender: int) -> None:
    if refusal is not None:
        kind, reason = refusal
        raise PeerRefused(reason, kind=kind, sender=sender)


class PeerHandler:
    """Implements the transport's ``RaftHandler`` protocol on top of a :class:`Driver`.

    ``max_snapshot_bytes`` bounds the data of one incoming snapshot;
    ``min_free_bytes`` is the disk space a snapshot being staged must leave
    free (a snapshot never fills the disk the log needs). ``forwarded``
    runs a follower's forwarded client request (None: refused).
    ``authenticated``: the transport proves every sender's identity (mutual
    TLS with member certificates), which the rule for senders outside the
    configuration relies on (see :mod:`~nexus_raft.consensus.node.guard`).
    """

    def __init__(
        self,
        driver: Driver,
        staging_dir: Path | None,
        *,
        max_snapshot_bytes: int = 1 << 62,
        min_free_bytes: int = 0,
        forwarded: Callable[[wire.pb.ForwardRequest], Awaitable[wire.pb.ForwardResponse]]
        | None = None,
        authenticated: bool = False,
    ) -> None:
        self._authenticated = authenticated
        self._forwarded = forwarded
        self._driver = driver
        self._id = driver.id
        self._staging = staging_dir
        self._metrics = driver.metrics
        self._max_snapshot = max_snapshot_bytes
        self._min_free = min_free_bytes
        self._warn = LogLimiter(_log)

    def _check_to(self, to: int, sender: int) -> None:
        if to and to != self._id:
            raise MisaddressedRequest(
                f"request for node {to} reached node {self._id}", kind="misaddressed", sender=sender
            )

    async def request_vote(self, request: wire.pb.VoteRequest) -> wire.pb.VoteResponse:
        """Step a (pre-)vote request; answer with the core's vote."""
        sender = request.candidate_id
        self._check_to(request.to, sender)
        m = wire.vote_from_pb(request, self._id)
        raft = self._driver.raft
        _refuse(vote_refusal(m, raft.term, raft.is_peer_member), sender)
        downgrade = transfer_refusal(m, raft.term, raft.conf_state)
        if downgrade is not None:
            self._warn.warning(
                ("transfer", sender), "node %d: %s: no lease bypass", self._id, downgrade[1]
            )
            m = dataclasses.replace(m, transfer=False)
        resp = await self._driver.request(m)
        if not isinstance(resp, VoteResponse) or resp.to != sender:
            raise _mismatch("a vote", resp, sender)
        return wire.vote_response_to_pb(resp)

    async def append_entries(self, request: wire.pb.AppendRequest) -> wire.pb.AppendResponse:
        """Step an append or heartbeat; answer once the appended entries are durable."""
        sender = request.leader_id
        self._check_to(request.to, sender)
        try:
            m = wire.append_from_pb(request, self._id)
        except (ValueError, KeyError) as exc:
            raise _malformed(exc, sender) from None
        raft = self._driver.raft
        refused = append_refusal(m, raft.term, raft.is_peer_member, leader=raft.leader_id,
                                 authenticated=self._authenticated)
        if refused is not None and refused[0] == UNPROVEN:
            # A leader this node does not know yet, maybe: answered here, the
            # core sees nothing (see guard.stranger_answer).
            self._warn.log(
                logging.INFO, ("stranger", sender),
                "node %d: %s: answered with this node's log end (%d)",
                self._id, refused[1], raft.log.last_index(),
            )
            answer = stranger_answer(m, raft.term, raft.log.last_index(), raft.log.committed)
            return wire.append_response_to_pb(answer)
        _refuse(refused, sender)
        self._metrics.leader_contact = time.monotonic()
        resp = await self._driver.request(m)
        if not isinstance(resp, (AppendResponse, HeartbeatResponse)) or resp.to != sender:
            raise _mismatch("an append", resp, sender)
        return wire.append_response_to_pb(resp)

    async def install_snapshot(
        self, meta: wire.pb.SnapshotMeta, chunks: AsyncIterator[bytes]
    ) -> wire.pb.SnapshotAck:
        """Check the snapshot's sender and term, stage its data on disk, then step it.

        Everything that can be checked from ``meta`` is checked before a
        byte of data is read or written; a stale term is answered with this
        node's term (the sender steps down) without reading the data.
        """
        sender = meta.leader_id
        self._check_to(meta.to, sender)
        driver = self._driver
        try:
            m = wire.snapshot_from_pb(meta, self._id)
        except (ValueError, KeyError) as exc:
            raise _malformed(exc, sender) from None
        raft = driver.raft
        _refuse(
            snapshot_refusal(m, raft.term, raft.is_peer_member, leader=raft.leader_id,
                             authenticated=self._authenticated),
            sender,
        )
        if meta.term < raft.term:
            return wire.pb.SnapshotAck(
                term=raft.term, accepted=False, reason=f"stale term {meta.term} < {raft.term}"
            )
        staging = None if driver.witness else self._staging
        limited = _bounded(chunks, self._max_snapshot, staging, self._min_free, sender)
        try:
            staged = await receive_snapshot(meta.index, limited, staging, driver.executor)
        except BaseException:
            self._metrics.snapshot_receive_failures += 1
            raise
        old = driver.staged.pop(meta.index, None)
        if old is not None:
            old.discard()
        driver.staged[meta.index] = staged
        try:
            resp = await driver.request(m, timeout=600.0)
        finally:
            # Installed: the restore consumed the file. Otherwise it is of no use.
            if driver.staged.get(meta.index) is staged:
                del driver.staged[meta.index]
            staged.discard()
        if not isinstance(resp, AppendResponse) or resp.to != sender:
            raise _mismatch("a snapshot", resp, sender)
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
        """Leadership transfer: step TimeoutNow (the core campaigns at once).

        Honoured only from the current leader in the current term.
        """
        sender = request.leader_id
        self._check_to(request.to, sender)
        raft = self._driver.raft
        _refuse(
            timeout_now_refusal(
                sender, request.term, raft.term, raft.leader_id, raft.is_peer_member, me=self._id
            ),
            sender,
        )
        m = wire.timeout_now_from_pb(request, self._id)
        try:
            self._driver.submit(lambda: self._driver.raft.step(m))
        except NexusRaftError as exc:
            _log.warning("node %d: TimeoutNow refused: %s", self._id, exc)
            raise
        return wire.pb.TimeoutNowResponse(term=self._driver.term, from_id=self._id)

    async def read_index(self, request: wire.pb.ReadIndexRequest) -> wire.pb.ReadIndexResponse:
        """A follower's forwarded read: answer with the core's read index (or a rejection)."""
        sender = request.from_id
        self._check_to(request.to, sender)
        raft = self._driver.raft
        _refuse(
            sender_refusal(sender, raft.is_peer_member, me=self._id, joining_ok=False)
            or term_refusal(request.term, raft.term),
            sender,
        )
        resp = await self._driver.request(wire.read_index_from_pb(request, self._id))
        if not isinstance(resp, ReadIndexResponse) or resp.to != sender:
            raise _mismatch("a read index", resp, sender)
        if resp.context != request.context:
            raise _mismatch("a read index (another read's answer)", resp, sender)
        return wire.read_index_response_to_pb(resp)

    async def forward(self, request: wire.pb.ForwardRequest) -> wire.pb.ForwardResponse:
        """A member's forwarded client request: run it here (see ``node.forward``).

        Only a member of the configuration may forward (a removed or unknown
        node is refused like any other peer request from outside it); the
        ``check`` operation ("am I still a member?") is answered to anyone.
        """
        sender = request.from_id
        self._check_to(request.to, sender)
        raft = self._driver.raft
        if request.WhichOneof("op") != "check":  # a removed member may ask whether it is one
            _refuse(
                sender_refusal(sender, raft.is_peer_member, me=self._id, joining_ok=False), sender
            )
        if self._forwarded is None:
            raise ConsensusError(f"node {self._id} takes no forwarded requests")
        resp = await self._forwarded(request)
        resp.term = self._driver.term
        return resp


_FREE_CHECK_BYTES = 16 << 20  # re-read the free disk space after this much data


async def _bounded(
    chunks: AsyncIterator[bytes],
    limit: int,
    staging: Path | None,
    min_free: int,
    sender: int,
) -> AsyncIterator[bytes]:
    """``chunks``, refused (``PeerRefused``) once they exceed ``limit`` bytes in
    total, or when writing the next one would leave less than ``min_free``
    bytes free where they are staged (checked before the first chunk is
    written, then every 16 MiB)."""
    total = 0
    checked_at = -_FREE_CHECK_BYTES
    free: int | None = None
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise PeerRefused(
                f"snapshot data exceeds the {limit}-byte limit", kind="snapshot-size", sender=sender
            )
        if staging is not None and min_free:
            if total - checked_at >= _FREE_CHECK_BYTES:
                checked_at = total - len(chunk)
                try:
                    free = shutil.disk_usage(staging).free
                except OSError:
                    free = None
            if free is not None and free - (total - checked_at) < min_free:
                raise PeerRefused(
                    f"snapshot data would leave less than {min_free} bytes free in {staging}",
                    kind="snapshot-size",
                    sender=sender,
                )
        yield chunk
