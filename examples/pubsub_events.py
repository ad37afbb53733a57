"""Push events to subscribers with nexus_raft.transport alone (no Raft, no cluster).

A server publishes on topics; a client subscribes with ``async for``. Run it:

    python examples/pubsub_events.py
"""

from __future__ import annotations

import asyncio

from nexus_raft.transport import Publisher, PubSubClient, ServiceServer


async def main() -> None:
    publisher = Publisher(queue_size=256)  # per subscriber; a slow one loses its oldest
    server = ServiceServer("127.0.0.1:0", extra_servicers=[publisher.register])
    port = await server.start()
    try:
        client = PubSubClient(f"127.0.0.1:{port}")
        async with client, client.subscribe("orders") as orders:
            await orders.ready()  # the server now delivers what is published
            for n in range(1, 4):
                publisher.publish("orders", f"order {n} placed".encode())
            async for message in orders:
                print(f"{message.topic} #{message.seq}: {message.payload.decode()}")
                if message.seq == 3:
                    break
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
