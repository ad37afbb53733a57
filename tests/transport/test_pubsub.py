"""Publish/subscribe over real gRPC on loopback: order, topics, slow subscribers, refusals."""

from __future__ import annotations

import asyncio

import pytest

from nexus_raft.transport import (
    ClusterMismatch,
    Publisher,
    PubSubClient,
    ServiceServer,
    SlowPolicy,
    SubscriberTooSlow,
)


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def serve(publisher: Publisher) -> tuple[ServiceServer, str]:
    server = ServiceServer("127.0.0.1:0", extra_servicers=[publisher.register])
    port = await server.start()
    return server, f"127.0.0.1:{port}"


def test_subscribers_get_their_topic_in_publish_order() -> None:
    async def scenario() -> None:
        pub = Publisher()
        server, address = await serve(pub)
        try:
            async with PubSubClient(address) as client:
                a = client.subscribe("a")
                b = client.subscribe("b")
                await a.ready()
                await b.ready()
                assert pub.subscribers("a") == 1
                for i in range(100):
                    assert pub.publish("a", b"a%d" % i) == 1
                    pub.publish("b", b"b%d" % i)
                    pub.publish("nobody", b"x")  # no subscriber: dropped silently
                got_a = [await a.__anext__() for _ in range(100)]
                got_b = [await b.__anext__() for _ in range(100)]
                assert [m.payload for m in got_a] == [b"a%d" % i for i in range(100)]
                assert [m.seq for m in got_b] == list(range(1, 101))
                assert {m.topic for m in got_b} == {"b"} and all(m.dropped == 0 for m in got_a)
                await a.close()
                await b.close()
        finally:
            await server.stop()

    run(scenario())


def test_slow_subscriber_drops_oldest_and_is_told_how_many() -> None:
    async def scenario() -> None:
        pub = Publisher(queue_size=8)
        server, address = await serve(pub)
        try:
            async with PubSubClient(address) as client:
                sub = client.subscribe("t")
                await sub.ready()
                # The subscriber reads nothing while 20,000 messages of 4 KiB are
                # published: gRPC's flow control stops the server's writes after a
                # few, the queue stays at 8, and publish() never blocks.
                for i in range(20_000):
                    pub.publish("t", i.to_bytes(4, "big") * 1024)
                received = 0
                lost = 0
                last = 0
                async for m in sub:
                    seq = int.from_bytes(m.payload[:4], "big") + 1
                    assert seq == m.seq
                    assert m.seq == last + 1 + m.dropped  # every gap is announced
                    last = m.seq
                    received += 1
                    lost += m.dropped
                    if m.seq == 20_000:
                        break
                assert received + lost == 20_000
                assert lost > 0 and received < 20_000
                await sub.close()
        finally:
            await server.stop()

    run(scenario())


def test_disconnect_policy_ends_a_slow_subscription() -> None:
    async def scenario() -> None:
        pub = Publisher(queue_size=4, policy=SlowPolicy.DISCONNECT)
        server, address = await serve(pub)
        try:
            async with PubSubClient(address) as client:
                sub = client.subscribe("t")
                await sub.ready()
                for _ in range(5000):
                    pub.publish("t", b"x" * 4096)
                with pytest.raises(SubscriberTooSlow):
                    async for _ in sub:
                        pass
                # Resubscribing works; the server forgot the old subscription.
                again = client.subscribe("t")
                await again.ready()
                assert pub.subscribers("t") == 1
                pub.publish("t", b"hello")
                assert (await again.__anext__()).payload == b"hello"
                await again.close()
        finally:
            await server.stop()

    run(scenario())


def test_other_cluster_and_bad_topics_are_refused() -> None:
    async def scenario() -> None:
        pub = Publisher(cluster_id="prod")
        server, address = await serve(pub)
        try:
            async with PubSubClient(address, cluster_id="test") as client:
                with pytest.raises(ClusterMismatch):
                    await client.subscribe("t").ready()
                with pytest.raises(ValueError):
                    client.subscribe("")
            with pytest.raises(TypeError):
                pub.publish("t", "text")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                Publisher(queue_size=0)
            pub.close()
            with pytest.raises(RuntimeError):
                pub.publish("t", b"x")
        finally:
            await server.stop()

    run(scenario())
