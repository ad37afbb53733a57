"""Server-streaming publish/subscribe over gRPC, usable without Raft.

Server side, a :class:`Publisher` hosts topics on any ``grpc.aio.Server``
(``RaftServer(..., extra_servicers=[publisher.register])``, or
``ServiceServer``, or your own); ``publisher.publish(topic, payload)`` never
blocks. Client side, :class:`PubSubClient` subscribes with ``async for``::

    publisher = Publisher(queue_size=256)
    server = ServiceServer("127.0.0.1:0", extra_servicers=[publisher.register])
    port = await server.start()
    async with PubSubClient(f"127.0.0.1:{port}") as client:
        async with client.subscribe("orders") as messages:
            publisher.publish("orders", b"order 1")
            async for m in messages:        # PubSubMessage(topic, seq, payload, dropped)
                ...

Delivery: each subscription receives, in publish order, the messages of its
topic published after the server registered it (:meth:`Subscription.ready`
waits for that). Nothing is stored for subscribers that are not connected.

Flow control and slow subscribers: the server writes to each subscriber as
fast as gRPC's flow control lets it (a client that stops reading stops the
writes); meanwhile new messages wait in that subscriber's queue of at most
``queue_size`` messages. When the queue is full the policy decides:

* :attr:`SlowPolicy.DROP_OLDEST` (default): the oldest queued message is
  dropped; the next message delivered carries ``dropped`` = how many were
  dropped right before it (and ``seq`` has the same gap), so a subscriber
  always knows it missed something and never blocks the publisher;
* :attr:`SlowPolicy.DISCONNECT`: the subscription ends with
  :class:`~nexus_raft.transport.errors.SubscriberTooSlow` on the client
  (gRPC ``RESOURCE_EXHAUSTED``); the client may subscribe again.

Memory per subscriber is bounded by ``queue_size`` payloads.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from nexus_raft.transport._generated import pubsub_pb2 as pb
from nexus_raft.transport._generated import pubsub_pb2_grpc as pb_grpc
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.errors import (
    CLUSTER_MISMATCH,
    ERROR_KEY,
    SubscriberTooSlow,
    from_rpc_error,
)
from nexus_raft.transport.options import DEFAULT_CLUSTER_ID, channel_options
from nexus_raft.transport.tls import TLSConfig

__all__ = ["PubSubMessage", "PubSubClient", "Publisher", "SlowPolicy", "Subscription"]

_SLOW = "subscriber-too-slow"


class SlowPolicy(enum.Enum):
    """What a :class:`Publisher` does when a subscriber's queue is full."""

    DROP_OLDEST = "drop_oldest"
    DISCONNECT = "disconnect"


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """One delivered message; ``dropped`` messages of the topic were lost just before it."""

    topic: str
    seq: int
    payload: bytes
    dropped: int = 0


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, not {type(topic).__name__}")
    if not topic:
        raise ValueError("topic must not be empty")
    return topic


class _Queue:
    """One subscriber's bounded queue (see the module docstring for the policy).

    Items are ``[seq, payload, dropped]``: ``dropped`` counts the messages
    dropped right before this one, so dropping the oldest item moves its own
    count (plus one) onto the item that becomes the oldest.
    """

    __slots__ = ("carry", "items", "limit", "overflowed", "wake")

    def __init__(self, limit: int) -> None:
        self.items: collections.deque[list[Any]] = collections.deque()
        self.limit = limit
        self.carry = 0  # dropped with nothing queued behind them yet
        self.overflowed = False
        self.wake = asyncio.Event()

    def put(self, seq: int, payload: bytes, policy: SlowPolicy) -> None:
        if len(self.items) >= self.limit:
            if policy is SlowPolicy.DISCONNECT:
                self.overflowed = True
                self.wake.set()
                return
            _, _, carried = self.items.popleft()
            if self.items:
                self.items[0][2] += 1 + carried
            else:
                self.carry += 1 + carried
        self.items.append([seq, payload, self.carry])
        self.carry = 0
        self.wake.set()


class Publisher:
    """Publishes to subscribers connected over gRPC (see the module docstring).

    ``cluster_id``: subscribe requests must carry it. ``queue_size``: the
    per-subscriber bound. Use on one event loop (the server's).
    """

    def __init__(
        self,
        *,
        queue_size: int = 1024,
        policy: SlowPolicy = SlowPolicy.DROP_OLDEST,
        cluster_id: str = DEFAULT_CLUSTER_ID,
    ) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"queue_size must be an int, not {type(queue_size).__name__}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not isinstance(policy, SlowPolicy):
            raise TypeError(f"policy must be a SlowPolicy, not {type(policy).__name__}")
        if not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be a str, not {type(cluster_id).__name__}")
        self.queue_size = queue_size
        self.policy = policy
        self.cluster_id = cluster_id
        self._topics: dict[str, set[_Queue]] = {}
        self._seq: dict[str, int] = {}
        self._closed = False

    def register(self, server: grpc.aio.Server) -> None:
        """Add the ``nexus_raft.pubsub.PubSub`` service to ``server`` (before it starts)."""
        pb_grpc.add_PubSubServicer_to_server(_Servicer(self), server)

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue ``payload`` for every current subscriber of ``topic``; how many. Never blocks."""
        _check_topic(topic)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        if self._closed:
            raise RuntimeError("publisher is closed")
        seq = self._seq[topic] = self._seq.get(topic, 0) + 1
        queues = self._topics.get(topic, ())
        data = bytes(payload)
        for q in queues:
            q.put(seq, data, self.policy)
        return len(queues)

    def subscribers(self, topic: str) -> int:
        """How many subscriptions ``topic`` has right now."""
        return len(self._topics.get(_check_topic(topic), ()))

    def close(self) -> None:
        """End every subscription (their streams finish normally). Idempotent."""
        self._closed = True
        for queues in self._topics.values():
            for q in queues:
                q.wake.set()

    def _add(self, topic: str) -> _Queue:
        q = _Queue(self.queue_size)
        self._topics.setdefault(topic, set()).add(q)
        return q

    def _remove(self, topic: str, q: _Queue) -> None:
        queues = self._topics.get(topic)
        if queues is not None:
            queues.discard(q)
            if not queues:
                del self._topics[topic]


class _Servicer(pb_grpc.PubSubServicer):  # type: ignore[misc]
    def __init__(self, publisher: Publisher) -> None:
        self._pub = publisher

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Any
    ) -> AsyncIterator[pb.Published]:
        pub = self._pub
        if request.cluster_id != pub.cluster_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cluster id mismatch: this server is in {pub.cluster_id!r}",
                trailing_metadata=((ERROR_KEY, CLUSTER_MISMATCH),),
            )
        if not request.topic:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "topic must not be empty")
        topic = request.topic
        q = pub._add(topic)
        try:
            # An empty first message: the subscription is registered (ready()).
            yield pb.Published(topic=topic)
            while True:
                if not q.items:
                    if pub._closed:
                        return
                    q.wake.clear()
                    await q.wake.wait()
                    continue
                if q.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"subscriber too slow: more than {q.limit} messages queued on {topic!r}",
                        trailing_metadata=((ERROR_KEY, _SLOW),),
                    )
                seq, payload, dropped = q.items.popleft()
                # The write waits for gRPC flow control: a slow reader holds us here
                # while publish() keeps filling (and bounding) the queue.
                yield pb.Published(topic=topic, seq=seq, payload=payload, dropped=dropped)
        finally:
            pub._remove(topic, q)


class Subscription:
    """``async for message in subscription``; ``await ready()``; ``close()``."""

    def __init__(self, call: Any, topic: str, peer: str) -> None:
        self._call = call
        self.topic = topic
        self._peer = peer
        self._ready = asyncio.Event()
        self._closed = False

    async def ready(self) -> None:
        """Wait until the server registered this subscription (later messages arrive)."""
        if not self._ready.is_set():
            first = await self._read()
            if first is not None:
                self._ready.set()

    async def _read(self) -> pb.Published | None:
        try:
            item = await self._call.read()
        except grpc.aio.AioRpcError as err:
            if self._closed:
                return None
            exc = from_rpc_error(err, peer=self._peer, method="Subscribe")
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise SubscriberTooSlow(str(exc), peer=self._peer, method="Subscribe") from None
            raise exc from None
        except asyncio.CancelledError:
            if self._closed:
                return None
            raise
        return None if item is grpc.aio.EOF else item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> PubSubMessage:
        await self.ready()
        item = await self._read()
        if item is None:
            raise StopAsyncIteration
        return PubSubMessage(item.topic, item.seq, bytes(item.payload), item.dropped)

    async def close(self) -> None:
        """Stop receiving (idempotent)."""
        if not self._closed:
            self._closed = True
            self._call.cancel()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class PubSubClient:
    """Subscribes to topics on one server (one gRPC channel); ``async with`` or ``close()``."""

    def __init__(
        self,
        endpoint: str,
        *,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        tls: TLSConfig | None = None,
    ) -> None:
        address = NodeAddress(1, endpoint)
        self._peer = address.target
        if address.tls or tls is not None:
            creds = (tls or TLSConfig()).channel_credentials()
            self._channel = grpc.aio.secure_channel(
                address.target, creds, options=channel_options()
            )
        else:
            self._channel = grpc.aio.insecure_channel(address.target, options=channel_options())
        self._stub = pb_grpc.PubSubStub(self._channel)
        self._cluster_id = cluster_id

    def subscribe(self, topic: str) -> Subscription:
        """A subscription to ``topic`` (messages published once the server registered it)."""
        call = self._stub.Subscribe(
            pb.SubscribeRequest(cluster_id=self._cluster_id, topic=_check_topic(topic))
        )
        return Subscription(call, topic, self._peer)

    async def close(self) -> None:
        """Close the channel (subscriptions end). Idempotent."""
        await self._channel.close()

    async def __aenter__(self) -> PubSubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
