"""A large etcd Range is served off the event loop: heartbeats and other RPCs go on meanwhile.

Three real RaftNodes (real gRPC, real LevelDB) share this test's event loop,
so anything that blocks the loop stalls all of them: no heartbeat is sent
or received and no other request is answered until it returns. While one
Range over 60,000 keys runs (about a second), the test measures the loop's
longest gap and counts the single-key Ranges answered meanwhile. Served on
the loop, the gap was the whole range (1,057 ms of 1,107 ms, one read
answered); in a worker thread it is 140-225 ms on this loaded machine (a
garbage collection or the reply's encoding), with 17-25 reads answered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from nexus_raft.kv.etcd import service_kv
from nexus_raft.transport._generated.etcd import rpc_pb2, rpc_pb2_grpc
from tests.consensus.node.harness import Cluster, put, wait_until

KEYS = 60_000


def test_a_large_range_does_not_stall_heartbeats_or_other_rpcs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        channel: grpc.aio.Channel | None = None
        try:
            await c.start_all()
            leader = await c.leader()
            for start in range(0, KEYS, 2000):
                await leader.propose_many(
                    [put(f"big/{i:06d}", b"x" * 100) for i in range(start, start + 2000)],
                    timeout=30.0,
                )
            await c.wait_applied(leader.status().commit, timeout=60.0)
            term = leader.status().term
            channel = grpc.aio.insecure_channel(
                c.peers[leader.id], options=[("grpc.max_receive_message_length", 64 << 20)]
            )
            stub = rpc_pb2_grpc.KVStub(channel)
            await stub.Range(rpc_pb2.RangeRequest(key=b"big/000000"), timeout=10)
            loop = asyncio.get_running_loop()
            gaps: list[float] = []
            small: list[float] = []
            done = asyncio.Event()

            async def watch_loop() -> None:
                last = loop.time()
                while not done.is_set():
                    await asyncio.sleep(0.005)
                    now = loop.time()
                    gaps.append(now - last)
                    last = now

            async def single_keys() -> None:
                while not done.is_set():
                    await stub.Range(rpc_pb2.RangeRequest(key=b"big/000001"), timeout=30)
                    small.append(loop.time())
                    await asyncio.sleep(0.01)

            tasks = [asyncio.ensure_future(watch_loop()), asyncio.ensure_future(single_keys())]
            started = loop.time()
            big = await stub.Range(
                rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0"), timeout=120
            )
            took = loop.time() - started
            done.set()
            await asyncio.gather(*tasks)
            assert big.count == KEYS and len(big.kvs) == KEYS
            during = [t for t in small if t < started + took]
            print(f"range of {KEYS} keys took {took:.2f}s; longest loop gap "
                  f"{max(gaps) * 1000:.0f} ms; {len(during)} single-key reads meanwhile")
            # Blocking the loop makes its longest gap the whole range (95 % of
            # it when measured); a loaded machine adds scheduling gaps of its own.
            assert max(gaps) < took * 0.75, (max(gaps), took)
            assert len(during) >= 3, (len(during), took)
            assert all(n.status().term == term for n in c.live())
            await wait_until(lambda: all(n.leader_id == leader.id for n in c.live()),
                             what="the same leader")
            # A reply over the message limit is refused with a clear error.
            monkeypatch.setattr(service_kv, "MAX_MESSAGE_BYTES", 1 << 20)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Range(rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0"), timeout=60)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "over the message limit" in str(info.value.details())
        finally:
            if channel is not None:
                await channel.close()
            await c.close()

    asyncio.run(scenario())
