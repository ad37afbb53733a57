"""The pipelined append/heartbeat stream over real loopback gRPC."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from nexus_raft.transport import (
    AppendRequest,
    AppendResponse,
    ClientClosed,
    ClusterMismatch,
    PeerUnavailable,
    RaftClient,
    RaftServer,
    RemoteError,
    StreamReset,
)
from nexus_raft.transport._generated import raft_pb2_grpc

from .helpers import RecordingHandler, address_of, serving


def test_order_kept_under_10k_pipelined_messages() -> None:
    n = 10_000

    async def main() -> None:
        async with serving() as (server, handler), RaftClient(address_of(server)) as client:
            async with client.heartbeat_stream() as hb:

                async def sender() -> None:
                    for i in range(n):
                        await hb.send(
                            AppendRequest(term=1, prev_log_index=i, heartbeat=i % 2 == 0)
                        )

                task = asyncio.create_task(sender())
                got: list[int] = []
                async for item in hb:
                    assert isinstance(item, AppendResponse), item
                    got.append(item.index)
                    if len(got) == n:
                        break
                await task
            assert got == list(range(n))
            assert [r.prev_log_index for r in handler.appends] == list(range(n))

    asyncio.run(main())


class _ReleasedOutOfOrder(RecordingHandler):
    """append_entries waits until the test releases that request's index."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[int, asyncio.Event] = {}
        self.arrived = asyncio.Event()
        self.in_progress = 0
        self.max_in_progress = 0

    async def append_entries(self, request: AppendRequest) -> AppendResponse:
        self.appends.append(request)
        gate = self.gates.setdefault(request.prev_log_index, asyncio.Event())
        if len(self.appends) == 5:
            self.arrived.set()
        self.in_progress += 1
        self.max_in_progress = max(self.max_in_progress, self.in_progress)
        await gate.wait()
        self.in_progress -= 1
        return AppendResponse(term=request.term, index=request.prev_log_index)


def test_handler_calls_overlap_but_responses_stay_in_request_order() -> None:
    async def main() -> None:
        handler = _ReleasedOutOfOrder()
        async with serving(handler) as (server, _), RaftClient(address_of(server)) as client:
            hb = client.heartbeat_stream()
            async with hb:
                for i in range(5):
                    await hb.send(AppendRequest(term=1, prev_log_index=i))
                # All five reach the handler before any of them is answered.
                await asyncio.wait_for(handler.arrived.wait(), 5)
                for i in reversed(range(5)):  # finish them last-first
                    handler.gates[i].set()
                got = []
                for _ in range(5):
                    item = await asyncio.wait_for(hb.__anext__(), 5)
                    assert isinstance(item, AppendResponse)
                    got.append(item.index)
                assert got == [0, 1, 2, 3, 4]
                assert handler.max_in_progress == 5

    asyncio.run(main())


def test_stream_window_one_serializes_handler_calls() -> None:
    async def main() -> None:
        handler = _ReleasedOutOfOrder()
        async with (
            serving(handler, stream_window=1) as (server, _),
            RaftClient(address_of(server)) as client,
            client.heartbeat_stream() as hb,
        ):
            for i in range(3):
                await hb.send(AppendRequest(term=1, prev_log_index=i))
            for i in range(3):
                # Exactly one call is in progress at a time.
                deadline = time.monotonic() + 5
                while len(handler.appends) < i + 1:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.01)
                assert len(handler.appends) == i + 1
                handler.gates.setdefault(i, asyncio.Event()).set()
                item = await asyncio.wait_for(hb.__anext__(), 5)
                assert isinstance(item, AppendResponse) and item.index == i
            assert handler.max_in_progress == 1

    asyncio.run(main())


async def _next_response(hb: object, deadline: float) -> AppendResponse | StreamReset:
    return await asyncio.wait_for(hb.__anext__(), max(0.1, deadline - time.monotonic()))  # type: ignore[attr-defined]


def test_stream_recovers_after_server_restart_on_same_port() -> None:
    async def main() -> None:
        server = RaftServer(RecordingHandler(), "127.0.0.1:0")
        port = await server.start()
        restarted: RaftServer | None = None
        try:
            async with RaftClient(address_of(server)) as client, client.heartbeat_stream() as hb:
                for i in range(3):
                    await hb.send(AppendRequest(term=1, prev_log_index=i))
                for i in range(3):
                    item = await asyncio.wait_for(hb.__anext__(), 5)
                    assert isinstance(item, AppendResponse) and item.index == i

                # A request in flight when the peer dies is reported, not dropped silently.
                handler_blocked = RecordingHandler()
                await server.stop(grace=None)
                deadline = time.monotonic() + 10
                item = await _next_response(hb, deadline)
                assert isinstance(item, StreamReset)
                assert isinstance(item.error, PeerUnavailable)

                restarted = RaftServer(handler_blocked, f"127.0.0.1:{port}")
                await restarted.start()
                # Keep sending until the stream is back (send raises while it reconnects).
                recovered = None
                while recovered is None:
                    assert time.monotonic() < deadline, "stream did not recover"
                    try:
                        await hb.send(AppendRequest(term=2, prev_log_index=100))
                    except PeerUnavailable:
                        await asyncio.sleep(0.02)
                        continue
                    got = await _next_response(hb, deadline)
                    if isinstance(got, AppendResponse):
                        recovered = got
                assert recovered.term == 2 and recovered.index == 100
                # And it keeps working in order afterwards.
                for i in range(200):
                    await hb.send(AppendRequest(term=2, prev_log_index=200 + i))
                for i in range(200):
                    got = await _next_response(hb, deadline)
                    assert isinstance(got, AppendResponse) and got.index == 200 + i
        finally:
            await server.stop(grace=None)
            if restarted is not None:
                await restarted.stop(grace=None)

    asyncio.run(main())


def test_unanswered_requests_are_listed_in_the_reset() -> None:
    async def main() -> None:
        handler = RecordingHandler()
        handler.block = asyncio.Event()  # requests arrive but are never answered
        server = RaftServer(handler, "127.0.0.1:0")
        await server.start()
        try:
            async with RaftClient(address_of(server)) as client, client.heartbeat_stream() as hb:
                for i in range(4):
                    await hb.send(AppendRequest(term=1, prev_log_index=i))
                deadline = time.monotonic() + 5
                while len(handler.appends) < 4:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.01)
                await server.stop(grace=None)
                item = await asyncio.wait_for(hb.__anext__(), 5)
                assert isinstance(item, StreamReset)
                assert [r.prev_log_index for r in item.lost] == [0, 1, 2, 3]
        finally:
            await server.stop(grace=None)

    asyncio.run(main())


def test_stream_refuses_wrong_cluster_and_reports_handler_failure() -> None:
    async def main() -> None:
        async with serving(cluster_id="blue") as (server, handler):
            async with (
                RaftClient(address_of(server), cluster_id="red") as client,
                client.heartbeat_stream() as hb,
            ):
                await hb.send(AppendRequest(term=1))
                item = await asyncio.wait_for(hb.__anext__(), 5)
                assert isinstance(item, StreamReset)
                assert isinstance(item.error, ClusterMismatch)
                assert len(item.lost) == 1
            assert handler.appends == []
            handler.fail_on = {"append_entries"}
            async with RaftClient(address_of(server), cluster_id="blue") as client:
                async with client.heartbeat_stream() as hb:
                    await hb.send(AppendRequest(term=1, prev_log_index=5))
                    item = await asyncio.wait_for(hb.__anext__(), 5)
                    assert isinstance(item, StreamReset)
                    assert isinstance(item.error, RemoteError)
                    assert [r.prev_log_index for r in item.lost] == [5]
                # The server is still fine.
                assert (await client.request_vote(3, 1, 0, 0)).term == 3

    asyncio.run(main())


def test_cluster_id_travels_once_per_call_and_is_checked_on_each_request() -> None:
    async def main() -> None:
        async with serving(cluster_id="blue") as (server, handler):
            async with (
                RaftClient(address_of(server), cluster_id="blue") as client,
                client.heartbeat_stream() as hb,
            ):
                for i in range(3):
                    await hb.send(AppendRequest(term=1, prev_log_index=i))
                for _ in range(3):
                    assert isinstance(await asyncio.wait_for(hb.__anext__(), 5), AppendResponse)
            assert [r.cluster_id for r in handler.appends] == ["blue", "", ""]

            # Raw calls: the first request must name the cluster; a later one
            # may be empty but must not name another cluster.
            async def raw(ids: list[str]) -> tuple[int, grpc.StatusCode | None]:
                channel = grpc.aio.insecure_channel(server.endpoint)
                try:
                    call = raft_pb2_grpc.RaftPeerStub(channel).Stream(
                        iter([AppendRequest(cluster_id=c, term=1, to=1) for c in ids])
                    )
                    answered = 0
                    try:
                        async for _ in call:
                            answered += 1
                    except grpc.aio.AioRpcError as exc:
                        return answered, exc.code()
                    return answered, None
                finally:
                    await channel.close()

            handler.appends.clear()
            assert await raw(["", "blue"]) == (0, grpc.StatusCode.FAILED_PRECONDITION)
            assert await raw(["blue", "", "red"]) == (2, grpc.StatusCode.FAILED_PRECONDITION)
            assert await raw(["blue", "", "blue"]) == (3, None)
            assert len(handler.appends) == 5

    asyncio.run(main())


def test_closed_stream_and_client() -> None:
    async def main() -> None:
        async with serving() as (server, _):
            client = RaftClient(address_of(server))
            hb = client.heartbeat_stream()
            await hb.send(AppendRequest(term=1))
            with pytest.raises(TypeError, match="request"):
                await hb.send(b"nope")  # type: ignore[arg-type]
            await client.close()  # closes its streams too
            assert hb.closed
            with pytest.raises(ClientClosed):
                await hb.send(AppendRequest(term=1))
            assert [item async for item in hb] == []
            with pytest.raises(ClientClosed):
                client.heartbeat_stream()

    asyncio.run(main())


def test_aclose_ends_a_blocked_reader_cleanly() -> None:
    async def main() -> None:
        handler = RecordingHandler()
        handler.block = asyncio.Event()  # the request is never answered
        async with serving(handler) as (server, _), RaftClient(address_of(server)) as client:
            hb = client.heartbeat_stream()
            await hb.send(AppendRequest(term=1))

            async def read_all() -> list[object]:
                return [item async for item in hb]

            reader = asyncio.create_task(read_all())
            deadline = time.monotonic() + 5
            while not handler.appends:  # the reader is now blocked on the response
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await hb.aclose()
            assert await asyncio.wait_for(reader, 5) == []

            idle = client.heartbeat_stream()  # never sent on: the reader waits for a connection
            idle_reader = asyncio.create_task(
                asyncio.wait_for(idle.__anext__(), 5)
            )
            await asyncio.sleep(0)
            await client.close()
            with pytest.raises(StopAsyncIteration):
                await idle_reader

    asyncio.run(main())
