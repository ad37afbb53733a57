"""The KV client's own logic against real KV gRPC servers over test-double nodes.

Leader following, failover, give-up errors, coalescing into batches,
exactly-once retries, watch resumption and the service's input checks. The
Raft behind the service is a double (see kv_double.py); the process tests in
tests/integration cover the real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from nexus_raft.errors import (
    ClusterMismatch,
    Compacted,
    InvalidArgument,
    NexusRaftError,
    NotLeader,
    TooLarge,
    Unavailable,
)
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

from .kv_double import CLUSTER_ID, Running, double_cluster


@contextlib.asynccontextmanager
async def raw_stub(address: str) -> AsyncIterator[Any]:
    channel = grpc.aio.insecure_channel(address)
    try:
        yield kv_pb2_grpc.KVStub(channel)
    finally:
        await channel.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


def test_follows_the_leader_from_a_follower_endpoint() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[3]], timeout=2) as client:
            rev = await client.put("users/alice", b"1")
            assert rev == 1
            assert client.leader == c.addresses[1]
            assert await client.get("users/alice") == b"1"
            assert await client.get("users/bob") is None
            assert await client.cas("users/bob", None, b"2") is True
            assert await client.cas("users/bob", None, b"3") is False
            assert await client.cas("users/bob", b"2", b"4") is True
            assert await client.list_keys("users/") == [b"users/alice", b"users/bob"]
            assert await client.get_prefixes("") == [b"users/"]
            assert await client.delete("users/alice") is True
            assert await client.delete("users/alice") is False
            assert await client.get("users/bob", serializable=True) == b"4"

    run(body)


def test_follows_a_leader_change_and_a_dead_leader() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client(list(c.addresses.values()), timeout=3) as client:
            await client.put("k", b"1")
            assert client.leader == c.addresses[1]
            c.cluster.leader_id = 2  # an election elsewhere
            await client.put("k", b"2")
            assert client.leader == c.addresses[2]
            await c.stop(2)  # the leader dies; node 3 takes over
            c.cluster.leader_id = 3
            await client.put("k", b"3")
            assert client.leader == c.addresses[3]
            assert await client.get("k") == b"3"

    run(body)


def test_per_operation_unavailable_in_an_ok_batch_moves_the_client_to_another_member() -> None:
    """A leader that cannot write (its disk is full) answers Batch with OK and
    UNAVAILABLE per operation; the client used to take the OK as proof of
    leadership and retry there until its deadline."""

    async def body() -> None:
        async with double_cluster() as c, Client(list(c.addresses.values()), timeout=3) as client:
            await client.put("k", b"1")
            assert client.leader == c.addresses[1]
            c.cluster.broken.add(1)  # node 1 still thinks it leads; node 2 took over
            c.cluster.leader_id = 2
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await client.put("k", b"2")
            assert loop.time() - t0 < 1.0
            assert client.leader == c.addresses[2]
            assert await client.get("k") == b"2"

    run(body)


def test_gives_up_with_a_clear_error_when_no_leader() -> None:
    async def body() -> None:
        async with (
            double_cluster(leader=None) as c,
            Client(list(c.addresses.values()), timeout=0.4) as client,
        ):
            with pytest.raises(NotLeader, match="gave up"):
                await client.put("k", b"v")
            for server_id in list(c.servers):
                await c.stop(server_id)
            with pytest.raises((Unavailable, TimeoutError), match=r"gave up|deadline"):
                await client.status()

    run(body)


def test_a_witness_endpoint_sends_every_request_to_the_leader() -> None:
    async def body() -> None:
        async with (
            double_cluster(size=4, witness=4) as c,
            Client([c.addresses[4]], timeout=2) as client,
        ):
            assert await client.get("k") is None  # a read-only batch: the witness redirects
            assert client.leader == c.addresses[1]
            await client.put("k", b"v")
            assert await client.get("k", serializable=True) == b"v"
            assert await client.list_keys() == [b"k"]
            witness = await client.status(endpoint=c.addresses[4])
            assert witness.id == 4 and witness.revision == 0

    run(body)


def test_concurrent_writes_are_coalesced_into_few_batches() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=5) as client:
            await asyncio.gather(*(client.put(f"k/{i}", b"x" * 16) for i in range(256)))
            assert c.cluster.kv.applied == 256
            assert len(c.cluster.kv.data) == 256
            # 256 callers at once: one batch goes out alone, the rest wait for it.
            assert client.batches_sent <= 8, client.batches_sent
            values = await asyncio.gather(*(client.get(f"k/{i}") for i in range(256)))
            assert values == [b"x" * 16] * 256

    run(body)


def test_big_values_are_split_across_batches() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=10) as client:
            big = b"x" * (1 << 20)  # 40 MiB in total: more than one gRPC message may carry
            await asyncio.gather(*(client.put(f"big/{i}", big) for i in range(40)))
            assert c.cluster.kv.applied == 40
            assert client.batches_sent >= 10
            # 40 MiB of answers do not fit one response either: the service
            # answers what fits and the client asks again for the rest.
            values = await asyncio.gather(*(client.get(f"big/{i}") for i in range(40)))
            assert values == [big] * 40

    run(body)


def test_one_rpc_per_op_without_batching() -> None:
    async def body() -> None:
        async with (
            double_cluster() as c,
            Client([c.addresses[1]], max_batch=1, max_inflight_batches=64) as client,
        ):
            await asyncio.gather(*(client.put(f"k/{i}", b"v") for i in range(20)))
            assert client.batches_sent == 20

    run(body)


def test_a_lost_answer_is_retried_and_applied_once() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=3) as client:
            c.cluster.lose_answers = 1  # applied, but the client hears TIMEOUT
            assert await client.cas("once", None, b"v") is True  # a re-apply would say False
            assert c.cluster.kv.applied == 1
            assert c.cluster.proposals == 2  # the retry reached the node ...
            assert len(c.cluster.kv.history) == 1  # ... and changed nothing

    run(body)


def test_same_client_id_and_seq_twice_over_the_wire() -> None:
    async def body() -> None:
        async with double_cluster() as c, raw_stub(c.addresses[1]) as stub:
            req = kv_pb2.CasRequest(
                cluster_id=CLUSTER_ID,
                key=b"k",
                expect_absent=True,
                new_value=b"v",
                client_id=42,
                seq=7,
            )
            first = await stub.Cas(req)
            second = await stub.Cas(req)
            assert first.succeeded and second.succeeded
            assert first.revision == second.revision == 1
            assert c.cluster.kv.applied == 1

    run(body)


def test_bad_input_is_rejected_and_the_service_keeps_serving() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[2]], timeout=2) as client:
            with pytest.raises(TooLarge, match="limit"):
                await client.put("big", b"x" * ((1 << 20) + 1))
            with pytest.raises(InvalidArgument, match="empty"):
                await client.put("", b"v")
            with pytest.raises(InvalidArgument, match="NUL"):
                await client.put("a\x00b", b"v")
            with pytest.raises(TypeError, match="key"):
                await client.put(1, b"v")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="value"):
                await client.put("k", "text")  # type: ignore[arg-type]
            async with Client([c.addresses[1]], cluster_id="other", timeout=2) as foreign:
                with pytest.raises(ClusterMismatch, match="other"):
                    await foreign.put("k", b"v")
                with pytest.raises(ClusterMismatch):
                    await foreign.get("k")
            assert c.cluster.kv.applied == 0
            await client.put("k", b"v")  # still serving
            assert await client.get("k") == b"v"

    run(body)


def test_undecodable_requests_get_the_error_kv_proto_promises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bytes that are no request message: answered INVALID_ARGUMENT in the
    response's error (not a raw UNKNOWN), with no traceback in the log."""
    garbage = b"\xff\xff\xff\xff\x0f"

    async def body() -> None:
        async with double_cluster() as c:
            channel = grpc.aio.insecure_channel(c.addresses[1])
            try:
                for method, response in (
                    ("Put", kv_pb2.PutResponse),
                    ("Batch", kv_pb2.BatchResponse),
                    ("Status", kv_pb2.StatusResponse),
                ):
                    call = channel.unary_unary(f"/nexus.kv.KV/{method}")
                    for _ in range(20):
                        raw = await call(garbage, timeout=5)
                        answer = response.FromString(raw)
                        assert answer.error.code == kv_pb2.INVALID_ARGUMENT
                        assert "could not decode" in answer.error.message
                watch = channel.unary_stream("/nexus.kv.KV/Watch")
                answers = [kv_pb2.WatchResponse.FromString(r) async for r in watch(garbage)]
                assert [a.error.code for a in answers] == [kv_pb2.INVALID_ARGUMENT]
                # A request stream: the call ends with INVALID_ARGUMENT.
                pipeline = channel.stream_stream("/nexus.kv.KV/Pipeline")
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    async for _ in pipeline(iter([garbage])):
                        pass
                assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "could not decode" in (ended.value.details() or "")
            finally:
                await channel.close()
            async with Client([c.addresses[1]], timeout=2) as client:
                await client.put("still", b"serving")

    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="nexus_raft"):
        run(body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    warned = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert 1 <= len(warned) <= 12  # rate-limited: at most 3 per method


def test_watches_are_bounded_per_connection_and_unread_ones_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The watch policy: a connection past its limit of open watches is told
    so at once (TOO_LARGE); a stream the client does not read ends after the
    send timeout (RESOURCE_EXHAUSTED), freeing its slot; writes go on."""

    async def body() -> None:
        async with double_cluster() as c:
            policy = c.services[1].watch_policy
            policy.max_per_connection = 3
            policy.send_timeout = 0.5
            # Without BDP probing the client's window stays at 64 KiB: an
            # unread stream really stops accepting data.
            channel = grpc.aio.insecure_channel(
                c.addresses[1], options=[("grpc.http2.bdp_probe", 0)]
            )
            try:
                stub = kv_pb2_grpc.KVStub(channel)
                calls = [stub.Watch(kv_pb2.WatchRequest(prefix=b"w/")) for _ in range(3)]
                for call in calls:  # each is established (first message read)
                    assert (await call.read()).error.code == kv_pb2.OK
                extra = stub.Watch(kv_pb2.WatchRequest(prefix=b"w/"))
                refused = await extra.read()
                assert refused.error.code == kv_pb2.TOO_LARGE
                assert "too many watches on one connection (limit 3)" in refused.error.message
                # Nobody reads the three: flood them, and they end.
                async with Client([c.addresses[1]], timeout=5) as client:
                    value = b"x" * 20_000
                    await asyncio.gather(*(client.put(f"w/{i}", value) for i in range(200)))
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while policy.open_on(_peer_of(c, policy)) and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                for call in calls:
                    with pytest.raises(grpc.aio.AioRpcError) as ended:
                        while True:
                            message = await call.read()
                            assert message is not grpc.aio.EOF
                    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                # The slots are free again.
                again = stub.Watch(kv_pb2.WatchRequest(prefix=b"w/"))
                assert (await again.read()).error.code == kv_pb2.OK
                again.cancel()
            finally:
                await channel.close()

    with caplog.at_level(logging.WARNING), caplog.at_level(logging.WARNING, logger="nexus_raft"):
        run(body)
    assert any("not read for" in r.getMessage() for r in caplog.records)


def _peer_of(c: Running, policy: Any) -> str:
    """The one connection that has watches open (the test's own)."""
    opened = list(policy._open)
    return opened[0] if opened else ""


def test_an_unexpected_server_error_is_answered_and_the_service_survives() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=2) as client:
            c.cluster.explode = True
            with pytest.raises(NexusRaftError, match="internal error: RuntimeError: boom"):
                await client.put("k", b"v")
            c.cluster.explode = False
            await client.put("k", b"v")
            assert await client.get("k") == b"v"

    run(body)


def test_watch_replays_then_resumes_on_another_member() -> None:
    async def body() -> None:
        async with (
            double_cluster() as c,
            Client([c.addresses[2], c.addresses[3]], timeout=3) as client,
        ):
            for i in range(3):
                await client.put(f"w/{i}", str(i).encode())
            stream = client.watch("w/", start_revision=2)
            first = await stream.__anext__()
            assert (first.revision, first.key, first.value) == (2, b"w/1", b"1")
            served_by = stream.endpoint
            node_id = next(i for i, a in c.addresses.items() if a == served_by)
            await c.stop(node_id)  # the member serving the watch goes away
            c.cluster.leader_id = 3 if node_id != 3 else 2
            await client.delete("w/0")
            events = [await stream.__anext__(), await stream.__anext__()]
            assert [(e.revision, e.key, e.value) for e in events] == [
                (3, b"w/2", b"2"),
                (4, b"w/0", None),
            ]
            assert stream.reconnects >= 1
            await stream.close()
            c.cluster.kv.compacted_below = 3
            with pytest.raises(Compacted):
                await client.watch("w/", start_revision=1).__anext__()

    run(body)


def test_cluster_calls() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[3]], timeout=2) as client:
            status = await client.status()
            assert status.is_leader and status.id == 1 and status.endpoint == c.addresses[1]
            own = await client.status(endpoint=c.addresses[3])
            assert own.id == 3 and own.role == "follower" and own.leader_id == 1
            assert [m.id for m in await client.members()] == [1, 2, 3]
            await client.add_member(4, "127.0.0.1:9", role="learner")
            assert c.cluster.addresses[4] == "127.0.0.1:9"
            with pytest.raises(InvalidArgument, match="role"):
                await client.add_member(5, "127.0.0.1:9", role="boss")
            with pytest.raises(InvalidArgument, match="HOST:PORT"):
                await client.add_member(5, "nowhere")
            await client.remove_member(4)
            await client.transfer_leader(2)
            assert c.cluster.leader_id == 2
            await client.put("k", b"v")
            assert client.leader == c.addresses[2]
            assert await client.snapshot() == 1

    run(body)


def test_sync_client() -> None:
    async def serve(ready: asyncio.Future[Running], done: asyncio.Event) -> None:
        async with double_cluster() as c:
            ready.set_result(c)
            await done.wait()

    async def body() -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Running] = loop.create_future()
        done = asyncio.Event()
        task = asyncio.create_task(serve(ready, done))
        c = await ready
        try:

            def use() -> None:
                with SyncClient(",".join(c.addresses.values()), timeout=3) as client:
                    assert client.put("a/b", b"1") == 1
                    assert client.get("a/b") == b"1"
                    assert client.cas("a/b", b"1", None) is True
                    assert client.list_keys("a/") == []
                    watch = client.watch("a/", start_revision=1)
                    assert [next(watch).value, next(watch).value] == [b"1", None]
                    watch.close()
                    assert client.status().id == 1

            await asyncio.to_thread(use)
        finally:
            done.set()
            await task

    run(body)


def test_wrong_argument_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="endpoints"):
        Client(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoints"):
        Client("")
    with pytest.raises(TypeError, match="timeout"):
        Client("127.0.0.1:1", timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        Client("127.0.0.1:http")
