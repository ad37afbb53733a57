"""Unary RPCs over real loopback gRPC: round trips, refusals, failures, limits."""

from __future__ import annotations

import asyncio
import socket
import time

import grpc
import pytest

from nexus_raft.errors import TransportError
from nexus_raft.transport import (
    AppendRequest,
    ClientClosed,
    ClusterMismatch,
    DeadlineExceeded,
    Entry,
    EntryType,
    NodeAddress,
    PayloadTooLarge,
    PeerUnavailable,
    RaftClient,
    RaftClientPool,
    RaftServer,
    RemoteError,
    Timeouts,
    Unimplemented,
    VoteResponse,
)
from nexus_raft.transport._generated import raft_pb2 as pb

from .helpers import NODE_ID, RecordingHandler, address_of, serving


def test_vote_round_trip() -> None:
    async def main() -> None:
        async with serving() as (server, handler):
            async with RaftClient(address_of(server)) as client:
                r = await client.request_vote(5, 1, 10, 3)
                assert isinstance(r, VoteResponse)
                assert (r.term, r.vote_granted, r.from_id, r.pre_vote) == (5, True, NODE_ID, False)
                r = await client.request_vote(6, 1, 0, 0, pre_vote=True)
                assert (r.term, r.vote_granted, r.pre_vote) == (6, False, True)
            sent = handler.votes[0]
            assert (sent.candidate_id, sent.to, sent.last_log_index, sent.last_log_term) == (
                1, NODE_ID, 10, 3,
            )
            assert sent.cluster_id == server.cluster_id

    asyncio.run(main())


def test_append_timeout_now_and_read_index_round_trip() -> None:
    async def main() -> None:
        async with serving() as (server, handler), RaftClient(address_of(server)) as client:
            req = AppendRequest(
                term=3, leader_id=1, prev_log_index=7, prev_log_term=2, leader_commit=6,
                payload_floor=5,
                entries=[
                    Entry(index=8, term=3, type=EntryType.NORMAL, data=b"x", has_data=True),
                    Entry(index=9, term=3, type=EntryType.CONF_CHANGE, data=b"cc", has_data=True),
                    Entry(index=10, term=3, has_data=False),
                ],
            )
            resp = await client.append_entries(req)
            assert (resp.term, resp.index, resp.reject) == (3, 10, False)
            got = handler.appends[0]
            assert got.to == NODE_ID and got.payload_floor == 5
            assert [(e.index, e.type, e.data, e.has_data) for e in got.entries] == [
                (8, EntryType.NORMAL, b"x", True),
                (9, EntryType.CONF_CHANGE, b"cc", True),
                (10, EntryType.NORMAL, b"", False),
            ]
            tn = await client.timeout_now(4, 1)
            assert (tn.term, tn.from_id) == (4, NODE_ID)
            ri = await client.read_index(4, 3, b"ctx-1")
            assert (ri.term, ri.index, ri.context, ri.reject) == (4, 42, b"ctx-1", False)

    asyncio.run(main())


def test_wrong_cluster_id_is_refused() -> None:
    async def main() -> None:
        async with serving(cluster_id="blue") as (server, handler):
            async with RaftClient(address_of(server), cluster_id="green") as client:
                with pytest.raises(ClusterMismatch):
                    await client.request_vote(1, 1, 0, 0)
                with pytest.raises(ClusterMismatch):
                    await client.append_entries(AppendRequest(term=1))
                with pytest.raises(ClusterMismatch):
                    await client.read_index(1, 1, b"")
            async with RaftClient(address_of(server), cluster_id="blue") as client:
                assert (await client.request_vote(1, 1, 0, 0)).term == 1
            assert len(handler.votes) == 1  # the refused ones never reached the handler

    asyncio.run(main())


def test_handler_exception_becomes_remote_error_and_server_survives() -> None:
    async def main() -> None:
        handler = RecordingHandler()
        handler.fail_on = {"request_vote"}
        async with serving(handler) as (server, _), RaftClient(address_of(server)) as client:
            with pytest.raises(RemoteError) as info:
                await client.request_vote(1, 1, 0, 0)
            assert "request_vote handler failed: RuntimeError" in str(info.value)
            assert info.value.status == "INTERNAL"
            handler.fail_on = set()
            assert (await client.request_vote(2, 1, 0, 1)).vote_granted

    asyncio.run(main())


def test_handler_returning_wrong_type_is_an_error_not_a_crash() -> None:
    class Bad(RecordingHandler):
        async def timeout_now(self, request):  # type: ignore[no-untyped-def]
            return "not a message"

    async def main() -> None:
        async with serving(Bad()) as (server, _), RaftClient(address_of(server)) as client:
            with pytest.raises(RemoteError, match="returned str"):
                await client.timeout_now(1, 1)
            assert (await client.request_vote(1, 1, 0, 0)).term == 1

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_peer_fails_fast() -> None:
    async def main() -> None:
        port = _free_port()  # nothing listens there any more
        async with RaftClient(NodeAddress(3, f"127.0.0.1:{port}")) as client:
            start = time.monotonic()
            with pytest.raises(PeerUnavailable) as info:
                await client.request_vote(1, 1, 0, 0)
            assert time.monotonic() - start < 1.5  # within the 1 s vote deadline (+ slack)
            assert info.value.peer == f"127.0.0.1:{port}"
            assert isinstance(info.value, TransportError)
            with pytest.raises((PeerUnavailable, DeadlineExceeded)):
                await client.append_entries(AppendRequest(term=1), timeout=0.5)
            stream = client.heartbeat_stream()
            with pytest.raises(PeerUnavailable):
                await stream.send(AppendRequest(term=1))
            await stream.aclose()

    asyncio.run(main())


def test_deadline_exceeded_on_a_stuck_peer() -> None:
    async def main() -> None:
        handler = RecordingHandler()
        handler.block = asyncio.Event()  # never set: every call hangs
        timeouts = Timeouts(vote=0.3)
        async with serving(handler) as (server, _):
            client = RaftClient(address_of(server), timeouts=timeouts)
            async with client:
                start = time.monotonic()
                with pytest.raises(DeadlineExceeded) as info:
                    await client.request_vote(1, 1, 0, 0)
                elapsed = time.monotonic() - start
                assert 0.25 <= elapsed < 1.5
                assert isinstance(info.value, TimeoutError)
                with pytest.raises(DeadlineExceeded):
                    await client.timeout_now(1, 1, timeout=0.2)

    asyncio.run(main())


def test_oversized_messages_are_refused_and_server_keeps_serving() -> None:
    async def main() -> None:
        big = AppendRequest(term=1, entries=[Entry(index=1, term=1, data=b"x" * (3 << 20))])
        async with serving(max_message_bytes=1 << 20) as (server, handler):
            # The sender's own limit (default 16 MiB) lets it through; the server's refuses.
            async with RaftClient(address_of(server)) as client:
                with pytest.raises(PayloadTooLarge):
                    await client.append_entries(big)
                assert (await client.request_vote(7, 1, 0, 0)).term == 7
            # The sender's limit refuses before anything is sent.
            async with RaftClient(address_of(server), max_message_bytes=1 << 20) as client:
                with pytest.raises(PayloadTooLarge):
                    await client.append_entries(big)
                assert (await client.request_vote(8, 1, 0, 0)).term == 8
            assert handler.appends == []

    asyncio.run(main())


def test_malformed_bytes_are_refused_and_server_keeps_serving() -> None:
    async def main() -> None:
        async with serving() as (server, handler):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                raw = channel.unary_unary("/nexus_raft.peer.RaftPeer/RequestVote")
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await raw(b"\xff\xff\xff\xff garbage", timeout=2)
                assert info.value.code() != grpc.StatusCode.OK
            async with RaftClient(address_of(server)) as client:
                assert (await client.request_vote(9, 1, 0, 0)).term == 9
            assert [v.term for v in handler.votes] == [9]

    asyncio.run(main())


def test_type_errors_and_closed_client() -> None:
    async def main() -> None:
        async with serving() as (server, _):
            client = RaftClient(address_of(server))
            with pytest.raises(TypeError, match="term"):
                await client.request_vote("1", 1, 0, 0)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="request"):
                await client.append_entries(pb.VoteRequest())
            with pytest.raises(TypeError, match="context"):
                await client.read_index(1, 1, "ctx")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="timeout"):
                await client.request_vote(1, 1, 0, 0, timeout=-1)
            await client.close()
            await client.close()  # idempotent
            with pytest.raises(ClientClosed):
                await client.request_vote(1, 1, 0, 0)
        with pytest.raises(TypeError, match="address"):
            RaftClient("127.0.0.1:1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="handler"):
            RaftServer(object())  # type: ignore[arg-type]

    asyncio.run(main())


def test_server_lifecycle_and_extra_servicers() -> None:
    async def main() -> None:
        added: list[object] = []
        server = RaftServer(RecordingHandler(), extra_servicers=[added.append])
        await server.stop()  # never started: a no-op
        server = RaftServer(RecordingHandler(), extra_servicers=[added.append])
        port = await server.start()
        try:
            assert port > 0 and server.port == port and len(added) == 1
            with pytest.raises(TransportError):  # the port is taken
                await RaftServer(RecordingHandler(), f"127.0.0.1:{port}").start()
        finally:
            await server.stop()
            await server.stop()  # idempotent

    asyncio.run(main())


def test_two_thousand_concurrent_votes_on_one_client_all_succeed() -> None:
    """The client bounds its own in-flight unary calls (64 per channel by default):
    2,000 simultaneous RequestVotes on one client used to make gRPC cancel about
    10 % of them (CANCELLED); now they queue locally and every one succeeds."""

    class Slow:
        async def request_vote(self, request: pb.VoteRequest) -> pb.VoteResponse:
            await asyncio.sleep(0.001)
            return pb.VoteResponse(term=request.term, vote_granted=True)

    async def scenario() -> None:
        server = RaftServer(Slow(), "127.0.0.1:0")
        port = await server.start()
        try:
            async with RaftClientPool() as pool:
                client = await pool.get(NodeAddress(2, f"127.0.0.1:{port}"))
                results = await asyncio.gather(
                    *(client.request_vote(1, 1, 0, 0, timeout=60) for _ in range(2000)),
                    return_exceptions=True,
                )
            failures = [r for r in results if not isinstance(r, pb.VoteResponse)]
            assert failures == []
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_handler_may_implement_only_some_methods() -> None:
    class VotesOnly:
        async def request_vote(self, request: pb.VoteRequest) -> pb.VoteResponse:
            return pb.VoteResponse(term=request.term, vote_granted=True)

    async def scenario() -> None:
        server = RaftServer(VotesOnly(), "127.0.0.1:0")
        port = await server.start()
        try:
            async with RaftClientPool() as pool:
                client = await pool.get(NodeAddress(2, f"127.0.0.1:{port}"))
                assert (await client.request_vote(3, 1, 0, 0)).vote_granted
                with pytest.raises(Unimplemented):
                    await client.timeout_now(3, 1)
                with pytest.raises(Unimplemented):
                    await client.append_entries(pb.AppendRequest(term=3, leader_id=1))
                with pytest.raises(Unimplemented):
                    await client.install_snapshot(pb.SnapshotMeta(term=3, index=1), b"x")
        finally:
            await server.stop()

    asyncio.run(scenario())
    with pytest.raises(TypeError, match="none of the RaftHandler methods"):
        RaftServer(object())
