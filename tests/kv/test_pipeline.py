"""The Pipeline RPC: batches on one long-lived stream per member, answered in any order.

Real gRPC servers running the real KVService over test-double nodes (see
kv_double.py), and the real client; one logic test drives ``serve_pipeline``
directly to pin the out-of-order pairing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.service.kv import KVService
from nexus_raft.kv.service.pipeline import serve_pipeline
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

from .kv_double import double_cluster


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


class _Counts:
    def __init__(self) -> None:
        self.unary = 0
        self.streams = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> _Counts:
    """Count unary Batch calls and Pipeline streams the servers see."""
    seen = _Counts()
    batch, pipeline = KVService.Batch, KVService.Pipeline

    async def counted_batch(self: KVService, request: Any, context: Any) -> Any:
        seen.unary += 1
        return await batch(self, request, context)

    async def counted_pipeline(self: KVService, requests: Any, context: Any) -> AsyncIterator[Any]:
        seen.streams += 1
        async for answer in pipeline(self, requests, context):
            yield answer

    monkeypatch.setattr(KVService, "Batch", counted_batch)
    monkeypatch.setattr(KVService, "Pipeline", counted_pipeline)
    return seen


def test_batches_travel_on_one_stream_per_member(counts: _Counts) -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=5) as client:
            for i in range(5):  # sequential: one batch each
                await client.put(f"seq/{i}", b"v")
            await asyncio.gather(*(client.put(f"k/{i}", b"x") for i in range(200)))
            values = await asyncio.gather(*(client.get(f"k/{i}") for i in range(200)))
            assert values == [b"x"] * 200
            assert c.cluster.kv.applied == 205
            assert client.batches_sent >= 6
            assert counts.streams == 1
            assert counts.unary == 0

    run(body)


def test_a_member_without_pipeline_is_served_by_unary_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The generated base class answers UNIMPLEMENTED: an older member.
    monkeypatch.setattr(KVService, "Pipeline", kv_pb2_grpc.KVServicer.Pipeline)

    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=5) as client:
            await client.put("a", b"1")
            await asyncio.gather(*(client.put(f"k/{i}", b"x") for i in range(50)))
            assert await client.get("a") == b"1"
            assert c.cluster.kv.applied == 51

    run(body)


def test_answers_leave_in_completion_order_and_name_their_request() -> None:
    async def body() -> None:
        first_may_finish = asyncio.Event()

        async def serve(batch: Any, budget: float) -> Any:
            key = batch.ops[0].get.key
            if key == b"slow":
                await first_may_finish.wait()
            else:
                first_may_finish.set()
            resp = kv_pb2.BatchResponse()
            resp.results.add().get.value = key
            return resp

        async def requests() -> AsyncIterator[Any]:
            for rid, key in ((7, b"slow"), (9, b"fast")):
                yield kv_pb2.PipelineRequest(
                    id=rid, batch=kv_pb2.BatchRequest(ops=[kv_pb2.BatchOp(get={"key": key})])
                )

        answers = [a async for a in serve_pipeline(serve, 1.0, requests())]
        assert [(a.id, a.batch.results[0].get.value) for a in answers] == [
            (9, b"fast"),
            (7, b"slow"),
        ]

    run(body)


def test_a_raw_pipeline_client_gets_every_answer_by_id() -> None:
    async def body() -> None:
        async with double_cluster() as c:
            async with grpc.aio.insecure_channel(c.addresses[1]) as channel:
                call = kv_pb2_grpc.KVStub(channel).Pipeline()
                for rid in range(1, 21):
                    op = kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"r/%d" % rid, value=b"v"))
                    await call.write(kv_pb2.PipelineRequest(id=rid, batch={"ops": [op]}))
                await call.done_writing()
                got = {}
                async for answer in call:
                    got[answer.id] = answer.batch.results[0].put.error.code
            assert got == {rid: kv_pb2.OK for rid in range(1, 21)}
            assert c.cluster.kv.applied == 20

    run(body)
