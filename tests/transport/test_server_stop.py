"""A server's stop returns only once the server has stopped, whoever began it.

Seen in fresh-clone CI runs and under load (test_node_snapshot_install.py's
restore that raises; before it tests/security/test_disk_full.py): a member
that failed began stopping its servers at once (grace 0), and its shutdown
called ``stop()`` again, which returned at once because a stop had begun.
The shutdown then finished while gRPC still ran the in-flight calls (a
peer's append stream), and the event loop's teardown cancelled gRPC's RPC
task, which gRPC reports with a bare traceback on stderr, after the member's
one-line reason.

Real gRPC on loopback: a call that is held open by its handler until the
server cancels it.
"""

from __future__ import annotations

import asyncio

import grpc

from nexus_raft.transport.server import ServiceServer

_METHOD = "/nexus_raft.test.Hold/Hold"


def _hold_service(started: asyncio.Event, ended: asyncio.Event) -> object:
    async def hold(request: bytes, context: object) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()  # only the server's cancellation ends it
        finally:
            ended.set()
        return b""  # pragma: no cover - never reached

    handler = grpc.unary_unary_rpc_method_handler(hold)
    return grpc.method_handlers_generic_handler("nexus_raft.test.Hold", {"Hold": handler})


def test_a_second_stop_returns_only_after_the_first_stopped_the_server() -> None:
    async def scenario() -> None:
        started, ended = asyncio.Event(), asyncio.Event()
        service = _hold_service(started, ended)
        server = ServiceServer(
            "127.0.0.1:0",
            extra_servicers=[lambda s: s.add_generic_rpc_handlers((service,))],  # type: ignore[list-item]
        )
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary(_METHOD)(b"", timeout=60)
        try:
            await asyncio.wait_for(started.wait(), 30)
            # The first stop (grace 0: the held call is cancelled at once) is
            # not awaited, as a failing member's stop begun from a callback.
            first = asyncio.get_running_loop().create_task(server.stop(grace=0))
            await asyncio.sleep(0)  # let it begin
            first.cancel()  # its caller goes away: the stop goes on for the others
            # The second returns once the server has stopped: the held call
            # was cancelled and its handler has ended.
            await asyncio.wait_for(server.stop(grace=30), 60)
            assert ended.is_set(), "stop() returned while a call was still being served"
            await server.stop()  # and once stopped, it returns at once
        finally:
            call.cancel()
            await channel.close()
            await server.stop(grace=None)

    asyncio.run(scenario())
