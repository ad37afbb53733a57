"""One-off sends of a RaftNode: votes, TimeoutNow, forwarded reads, snapshots.

Each runs in its own task (``Peers.spawn``) so the driver never waits on the
network; answers go back into the driver's inbox. Failures are logged and
dropped: Raft retries by itself (a new election, the next heartbeat, a new
snapshot attempt after ``report_snapshot(..., False)``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from nexus_raft.consensus.core.messages import (
    AppendResponse,
    Message,
    ReadIndexRequest,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.apply import Applier
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.snapshot import SnapshotStream, encode_header
from nexus_raft.consensus.state_machine import SnapshotSource
from nexus_raft.errors import NexusRaftError, TransportError, Unavailable

__all__ = ["Driver", "send_read_index", "send_snapshot", "send_timeout_now", "send_vote"]

_log = logging.getLogger(__name__)


class Driver(Protocol):
    """What the sends need of the node's driver (:class:`~.driver.Driver` implements it).

    ``deliver`` queues an answer for the core from any task; ``step`` and
    ``submit`` run on the driver's loop only (``submit`` queues an operation
    for the driver's next turn).
    """

    id: int
    raft: Raft
    applier: Applier
    peers: Peers
    executor: Executor
    cluster_id: str
    witness: bool
    reads: dict[bytes, asyncio.Future[int]]

    def deliver(self, m: Message) -> None: ...

    def step(self, m: Message) -> None: ...

    def submit(self, op: Callable[[], Awaitable[Any] | None]) -> None: ...


async def send_vote(d: Driver, m: VoteRequest) -> None:
    """RequestVote / PreVote to ``m.to``; the answer is stepped."""
    try:
        client = await d.peers.client(m.to)
        r = await client.vote(wire.vote_to_pb(m, d.cluster_id))
    except (TransportError, KeyError) as exc:
        _log.debug("node %d: vote request to %d failed: %s", d.id, m.to, exc)
        if isinstance(exc, TransportError):
            d.peers.note_error(m.to, exc)
        return
    d.peers.metrics.peer(m.to).last_contact = time.monotonic()
    d.deliver(wire.vote_response_from_pb(r, m.to, d.id))


async def send_timeout_now(d: Driver, m: TimeoutNow) -> None:
    """Tell the transfer target to campaign now."""
    try:
        client = await d.peers.client(m.to)
        await client.timeout_now(m.term, m.frm)
    except (TransportError, KeyError) as exc:
        _log.warning("node %d: TimeoutNow to %d failed: %s", d.id, m.to, exc)


async def send_read_index(d: Driver, m: ReadIndexRequest) -> None:
    """Forward a read to the leader; its answer (a read state or a refusal) is stepped."""
    try:
        client = await d.peers.client(m.to)
        r = await client.read_index(m.term, m.frm, m.context)
    except (TransportError, KeyError) as exc:
        fut = d.reads.pop(m.context, None)
        if fut is not None and not fut.done():
            d.peers.metrics.read_index_failures += 1
            fut.set_exception(Unavailable(f"read index via leader {m.to} failed: {exc}"))
        return
    d.deliver(wire.read_index_response_from_pb(r, m.to, d.id))


async def send_snapshot(d: Driver, m: SnapshotRequest) -> None:
    """Stream a snapshot to ``m.to``, then step its answer and ``report_snapshot``.

    A full member gets a fresh snapshot of the applied state (at or after
    ``m.snapshot.index``: the state machine keeps no older view, and a newer
    one is just as good; the core takes the follower's answer as its match).
    A witness gets the metadata alone.
    """
    to = m.to
    ok = False
    answer: AppendResponse | None = None
    stream: SnapshotStream | None = None
    try:
        target_is_witness = to in d.applier.conf.witnesses or to in (
            d.raft.status().conf_state.witnesses
        )
        source: SnapshotSource | None = None
        if target_is_witness:
            meta = m.snapshot
        elif d.witness:
            raise Unavailable("a witness holds no state to send")
        else:
            source, meta = await d.applier.take_snapshot()
        header = encode_header(d.peers.addresses, d.peers.attributes.header())
        stream = SnapshotStream(header, source, d.executor)
        req = SnapshotRequest(frm=m.frm, to=to, term=m.term, snapshot=meta)
        _log.info("node %d: sending snapshot at %d to %d", d.id, meta.index, to)
        client = await d.peers.client(to)
        ack = await client.install_snapshot(
            wire.snapshot_to_pb(req, d.cluster_id),
            stream,
        )
        ok = ack.accepted
        if ok:
            answer = AppendResponse(frm=to, to=d.id, term=ack.term, index=ack.index)
        elif ack.term > m.term:
            answer = AppendResponse(frm=to, to=d.id, term=ack.term, index=0, reject=True)
        _log.info(
            "node %d: snapshot at %d (%d bytes) to %d %s",
            d.id,
            meta.index,
            stream.sent,
            to,
            "installed" if ok else f"refused: {ack.reason}",
        )
    except (NexusRaftError, KeyError, OSError) as exc:
        _log.warning("node %d: sending a snapshot to %d failed: %s", d.id, to, exc)
    finally:
        if stream is not None:
            stream.close()
    stats = d.peers.metrics.peer(to)
    if ok:
        stats.snapshots_sent += 1
    else:
        stats.snapshot_send_failures += 1

    def report() -> None:
        if answer is not None:
            d.step(answer)
        d.raft.report_snapshot(to, ok)

    try:
        d.submit(report)
    except Unavailable:
        pass  # shutting down
