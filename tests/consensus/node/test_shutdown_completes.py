"""``RaftNode.shutdown()`` returns only once the node is shut down, whoever began it.

1. A member that stops serving on a failure (seen under load:
   test_node_snapshot_install.py's restore that raises failed 2 of 24 runs;
   before it tests/security/test_disk_full.py in fresh-clone CI runs). It
   began stopping its servers from a callback; ``shutdown()`` asked them to
   stop again, which returned at once because a stop had begun, so the
   shutdown returned while gRPC still served the calls in flight. The event
   loop's teardown then cancelled gRPC's RPC task, and gRPC printed a bare
   ``CancelledError`` traceback after the member's one-line reason.
2. A second shutdown while one is under way: a member removed from the
   cluster halts itself (a shutdown of its own); nexus-witness then shut it
   down again as it left, got an immediate return, and ended the event loop
   under the first one.

Real RaftNode, LevelDB and gRPC, one-member clusters.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from nexus_raft.errors import Unavailable
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store
from nexus_raft.transport._generated import kv_pb2, kv_pb2_grpc
from tests.consensus.node.harness import Cluster, put, wait_until


def _served_calls() -> list[asyncio.Task[object]]:
    """gRPC's server-side tasks of calls still being served (gRPC names them so)."""
    return [
        t for t in asyncio.all_tasks()
        if not t.done() and (t.get_name() == "rpc_task" or t.get_name().startswith("HandleExc"))
    ]  # fmt: skip


def test_shutdown_after_a_failure_returns_only_once_the_calls_in_flight_ended(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, n=1)
        channel = None
        try:
            await c.start_all()
            node = await c.leader()
            channel = grpc.aio.insecure_channel(c.peers[node.id])
            watch = kv_pb2_grpc.KVStub(channel).Watch(kv_pb2.WatchRequest(prefix=b"w/"))
            await wait_until(lambda: bool(_served_calls()), timeout=30.0,
                             what="the watch is being served")

            sm = node.state_machine
            assert isinstance(sm, KVStateMachine)

            def failing(items: object) -> list[bytes]:
                raise OSError("injected: the state machine cannot write")

            sm.apply_batch = failing  # type: ignore[method-assign]
            try:
                await node.propose(put("k", b"v"), timeout=30.0)
            except Unavailable:
                pass  # the apply failed: the member stops serving
            failure = await asyncio.wait_for(node.wait_failed(), 30.0)
            assert "injected: the state machine cannot write" in failure
            await c.stop(node.id)
            left = _served_calls()
            assert not left, f"shutdown() returned while gRPC still served {left}"
            watch.cancel()
        finally:
            if channel is not None:
                await channel.close()
            await c.close()

    asyncio.run(scenario())


def test_a_second_shutdown_returns_only_once_the_first_has_shut_the_node_down(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, n=1)
        try:
            await c.start_all()
            node = await c.leader()
            first = asyncio.get_running_loop().create_task(node.shutdown())
            await asyncio.sleep(0)  # it has begun (a halting member's own shutdown)
            assert not first.done()
            await node.shutdown()
            # The store is closed: the data directory opens again.
            with Store.open(node.config.store_path):
                pass
            await first
        finally:
            await c.close()

    asyncio.run(scenario())
