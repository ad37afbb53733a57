"""Outgoing peer traffic of a RaftNode: the address book and one sender per peer.

Appends and heartbeats to a peer go over that peer's pipelined bidirectional
stream (:class:`~nexus_raft.transport.stream.HeartbeatStream`), in the order
the core produced them, from one task per peer fed by a queue: the driver
never waits on the network. Responses read from the stream are converted back
to core messages and handed to ``deliver``; a broken stream or a failed send
is reported with ``unreachable`` (the core then probes the peer again, so a
lost message is only a delay).

Votes, TimeoutNow, ReadIndex and snapshots are one-off calls: the driver runs
each in its own task through :meth:`Peers.spawn`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nexus_raft.consensus.core.messages import AppendRequest, Heartbeat, Message
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.attributes import AttributeBook
from nexus_raft.consensus.node.metrics import NodeMetrics
from nexus_raft.consensus.node.tasks import cancel_and_wait
from nexus_raft.errors import TransportError
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.client import RaftClient
from nexus_raft.transport.errors import ClientClosed
from nexus_raft.transport.pool import RaftClientPool
from nexus_raft.transport.stream import HeartbeatStream, StreamReset

__all__ = ["PeerSender", "Peers", "merge_appends"]

_log = logging.getLogger(__name__)

# A peer that cannot keep up loses its oldest queued messages beyond this many;
# the core's flow control (in-flight window) keeps real queues far shorter.
_MAX_QUEUE = 4096
# Queued appends are merged into one message up to this many payload bytes
# (the transport accepts 16 MiB messages).
_MERGE_MAX_BYTES = 4 << 20

Outgoing = AppendRequest | Heartbeat


def merge_appends(a: Outgoing, b: Outgoing, a_bytes: int) -> tuple[AppendRequest, int] | None:
    """One AppendRequest doing the work of ``a`` then ``b``, or None if they do not chain.

    Raft-safe: a follower that receives the merged message ends in the state
    the two would leave it in (the same entries after the same prev, the
    later commit index), and its one answer acknowledges the last entry,
    which also releases ``a``'s slot in the leader's in-flight window (acks
    are cumulative). Heartbeats are never merged: a ReadIndex round needs
    each one answered. Returns the merged request and its payload bytes.
    """
    if type(a) is not AppendRequest or type(b) is not AppendRequest or a.term != b.term:
        return None
    end = a.prev_index + len(a.entries)
    commit = max(a.commit, b.commit)
    floor = max(a.payload_floor, b.payload_floor)
    if not a.entries and b.prev_index == a.prev_index:
        # ``a`` only carried a commit index (or probed the same position).
        return _with(b, b.entries, commit, floor), _payload(b.entries)
    if b.prev_index != end or b.prev_term != (a.entries[-1].term if a.entries else a.prev_term):
        return None
    if not b.entries:
        return _with(a, a.entries, commit, floor), a_bytes
    size = a_bytes + _payload(b.entries)
    if size > _MERGE_MAX_BYTES:
        return None
    return _with(a, a.entries + b.entries, commit, floor), size


def _with(m: AppendRequest, entries: tuple[Any, ...], commit: int, floor: int) -> AppendRequest:
    return AppendRequest(
        frm=m.frm,
        to=m.to,
        term=m.term,
        prev_index=m.prev_index,
        prev_term=m.prev_term,
        entries=entries,
        commit=commit,
        payload_floor=floor,
    )


def _payload(entries: tuple[Any, ...]) -> int:
    return sum(len(e.data) for e in entries if e.data)


Deliver = Callable[[Message], None]
Unreachable = Callable[[int], None]


class PeerSender:
    """Streams appends/heartbeats to one peer and feeds its answers back.

    Invariant: requests leave in ``send()`` order; each is either answered
    (its response delivered) or reported through ``unreachable``.

    Round-trip sampling: ``_sent``/``_answered`` count the messages of the
    current connection; at most one message is timed at once (the one
    numbered ``_sample``), so the cost per message is two integer updates.
    """

    def __init__(
        self,
        node_id: int,
        local_id: int,
        peers: Peers,
        deliver: Deliver,
        unreachable: Unreachable,
    ) -> None:
        self.node_id = node_id
        self._local = local_id
        self._peers = peers
        self._deliver = deliver
        self._unreachable = unreachable
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._stats = peers.metrics.peer(node_id)
        self._sent = 0
        self._answered = 0
        self._sample = 0
        self._sample_at = 0.0

    def send(self, request: Outgoing) -> None:
        """Queue ``request`` for the stream (never blocks)."""
        if self._closed:
            return
        queue = self._queue
        if len(queue) >= _MAX_QUEUE:
            queue.popleft()
            self._unreachable(self.node_id)
        queue.append(request)
        self._ready.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"raft-peer-{self._local}->{self.node_id}"
            )

    async def close(self) -> None:
        """Stop the sender task and close its stream. Idempotent."""
        self._closed = True
        self._queue.clear()
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        while not self._closed:
            try:
                client = await self._peers.client(self.node_id)
            except (TransportError, KeyError, ValueError) as exc:
                _log.debug("no client for peer %d: %s", self.node_id, exc)
                self._queue.clear()
                self._unreachable(self.node_id)
                await asyncio.sleep(0.1)
                continue
            try:
                await self._stream(client)
            except ClientClosed:
                continue  # the pool replaced the client (new address): reopen
            except TransportError as exc:
                _log.debug("stream to peer %d failed: %s", self.node_id, exc)
                self._peers.note_error(self.node_id, exc)
                self._unreachable(self.node_id)
                await asyncio.sleep(0.05)

    async def _stream(self, client: RaftClient) -> None:
        loop = asyncio.get_running_loop()
        self._sent = self._answered = self._sample = 0
        async with client.heartbeat_stream() as hb:
            reader = loop.create_task(self._read(hb))
            try:
                while not self._closed:
                    if not self._queue:
                        self._ready.clear()
                        await self._ready.wait()
                        continue
                    request = self._next()
                    # Counted before the send: its answer may be read while
                    # the send is still awaiting.
                    self._sent += 1
                    if not self._sample:
                        self._sample = self._sent
                        self._sample_at = time.monotonic()
                    try:
                        await hb.send(wire.append_to_pb(request, self._peers.cluster_id))
                    except ClientClosed:
                        raise
                    except TransportError:
                        # Not sent (the stream's contract): it is answered nowhere.
                        self._sent -= 1
                        self._answered = min(self._answered, self._sent)
                        self._sample = 0
                        # Reconnecting: this message is lost (the core resends
                        # from its progress tracking); drop what queued behind it
                        # too, it would only arrive out of date.
                        self._queue.clear()
                        self._unreachable(self.node_id)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _next(self) -> Outgoing:
        """The next message to send: queued appends that chain are merged into one.

        The queue builds up while the previous write waits for the network;
        sending its appends as one message saves a gRPC message, a follower
        Ready (and fsync) and an answer for each one merged.
        """
        queue = self._queue
        m = queue.popleft()
        size = -1
        while queue:
            if size < 0:
                if type(m) is not AppendRequest:
                    break
                size = _payload(m.entries)
            merged = merge_appends(m, queue[0], size)
            if merged is None:
                break
            queue.popleft()
            m, size = merged
        return m

    async def _read(self, hb: HeartbeatStream) -> None:
        peer, local = self.node_id, self._local
        stats = self._stats
        now = time.monotonic
        async for item in hb:
            if isinstance(item, StreamReset):
                # Everything sent so far is answered or lost now.
                self._answered = self._sent
                self._sample = 0
                self._peers.note_error(peer, item.error)
                self._unreachable(peer)
                continue
            t = stats.last_contact = now()
            self._answered += 1
            if self._answered == self._sample:
                stats.rtt.observe(t - self._sample_at)
                self._sample = 0
            self._deliver(wire.append_response_from_pb(item, peer, local))


class Peers:
    """The address book and the per-peer senders of one node.

    ``addresses`` maps every known member id (this node included) to its
    endpoint; the pool holds one gRPC channel per peer. ``secure``: dial
    endpoints without a scheme over TLS (the node has peer certificates).

    ``attributes`` holds what each member published about itself (its client
    URLs, see :mod:`~nexus_raft.consensus.node.attributes`);
    :meth:`client_address` is where clients reach a member.
    ``client_fallback``: members serve clients on their peer address (one
    port for both), so a member that has not published yet is reached there.
    """

    def __init__(
        self,
        local_id: int,
        addresses: dict[int, str],
        pool: RaftClientPool,
        deliver: Deliver,
        unreachable: Unreachable,
        cluster_id: str = "",
        metrics: NodeMetrics | None = None,
        on_error: Callable[[int, TransportError], None] | None = None,
        *,
        secure: bool = False,
        attributes: AttributeBook | None = None,
        client_fallback: bool = True,
    ) -> None:
        self._local = local_id
        self._secure = secure
        self.attributes = attributes if attributes is not None else AttributeBook()
        self._client_fallback = client_fallback
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self._on_error = on_error
        self.cluster_id = cluster_id
        self.addresses: dict[int, str] = dict(addresses)
        self.pool = pool
        self._deliver = deliver
        self._unreachable = unreachable
        self._senders: dict[int, PeerSender] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def address(self, node_id: int) -> str | None:
        """The endpoint of ``node_id``, if known."""
        return self.addresses.get(node_id)

    def client_address(self, node_id: int | None) -> str | None:
        """Where clients reach ``node_id``: its published client endpoint, if known.

        Before it has published, its peer address when members share one
        port for peers and clients; else None (the peer port serves no client).
        """
        if not node_id:
            return None
        attrs = self.attributes.get(node_id)
        if attrs is not None and attrs.client_urls:
            return attrs.client_endpoint
        return self.addresses.get(node_id) if self._client_fallback else None

    def note_error(self, node_id: int, exc: TransportError) -> None:
        """A call to ``node_id`` failed with ``exc`` (for the node's warnings)."""
        if self._on_error is not None:
            self._on_error(node_id, exc)

    def set_address(self, node_id: int, endpoint: str) -> bool:
        """Record ``node_id``'s endpoint; True when it changed."""
        if self.addresses.get(node_id) == endpoint:
            return False
        self.addresses[node_id] = endpoint
        return True

    async def forget(self, node_id: int) -> None:
        """Drop a removed member: its sender, its channel and its address."""
        self.addresses.pop(node_id, None)
        sender = self._senders.pop(node_id, None)
        if sender is not None:
            await sender.close()
        with contextlib.suppress(TransportError):
            await self.pool.remove(node_id)

    async def client(self, node_id: int) -> RaftClient:
        """The pooled client for ``node_id`` (KeyError when its address is unknown)."""
        endpoint = self.addresses[node_id]
        if self._secure and "://" not in endpoint:
            endpoint = "https://" + endpoint
        return await self.pool.get(NodeAddress(node_id, endpoint))

    def stream(self, node_id: int, request: Outgoing) -> None:
        """Queue an append/heartbeat for ``node_id``'s stream (converted when sent)."""
        if self._closed:
            return
        if node_id not in self.addresses:
            self._unreachable(node_id)
            return
        sender = self._senders.get(node_id)
        if sender is None:
            sender = PeerSender(node_id, self._local, self, self._deliver, self._unreachable)
            self._senders[node_id] = sender
        sender.send(request)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a one-off send in its own task (tracked so close() can cancel it)."""
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.warning("peer task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Stop every sender and task, then close the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()  # all at once; then make sure each one ended
        for task in tasks:
            await cancel_and_wait(task)
        senders = list(self._senders.values())
        self._senders.clear()
        for sender in senders:
            await sender.close()
        await self.pool.close()
