"""InstallSnapshot over real loopback gRPC: integrity, corruption, truncation."""

from __future__ import annotations

import asyncio
import os
import random
import zlib
from collections.abc import AsyncIterator

import grpc
import pytest

from nexus_raft.transport import (
    SNAPSHOT_CHUNK_BYTES,
    RaftClient,
    SnapshotAck,
    SnapshotChunk,
    SnapshotCorrupted,
    SnapshotMeta,
    SnapshotRejected,
    SnapshotTrailer,
)
from nexus_raft.transport._generated import raft_pb2_grpc as pb_grpc

from .helpers import NODE_ID, RecordingHandler, address_of, serving


def _meta() -> SnapshotMeta:
    return SnapshotMeta(
        term=4, leader_id=1, index=900, last_term=3, voters=[1, 2, 3], witnesses=[3]
    )


def test_64mib_snapshot_from_async_generator_arrives_intact() -> None:
    size = 64 * 1024 * 1024
    rng = random.Random(7)
    # Uneven piece sizes exercise re-chunking (pieces above 1 MiB get split).
    pieces = []
    total = 0
    while total < size:
        n = min(size - total, rng.choice([1, 4096, 700_000, SNAPSHOT_CHUNK_BYTES, 3_000_001]))
        pieces.append(n)
        total += n
    block = os.urandom(3_000_001)
    expected_crc = 0
    for n in pieces:
        expected_crc = zlib.crc32(block[:n], expected_crc)

    async def data() -> AsyncIterator[bytes]:
        for n in pieces:
            yield block[:n]

    async def main() -> None:
        async with serving() as (server, handler), RaftClient(address_of(server)) as client:
            ack = await client.install_snapshot(_meta(), data())
            assert isinstance(ack, SnapshotAck)
            assert (ack.accepted, ack.term, ack.index) == (True, 4, 900)
            meta, got_size, got_crc = handler.snapshots[0]
            assert (got_size, got_crc) == (size, expected_crc)
            assert list(meta.voters) == [1, 2, 3] and list(meta.witnesses) == [3]
            assert meta.to == NODE_ID and meta.cluster_id == server.cluster_id

    asyncio.run(main())


def test_5mb_snapshot_from_bytes_and_from_a_list_arrive_intact() -> None:
    blob = os.urandom(5_000_000)

    async def main() -> None:
        async with serving() as (server, handler), RaftClient(address_of(server)) as client:
            assert (await client.install_snapshot(_meta(), blob)).accepted
            assert (await client.install_snapshot(_meta(), [blob[:10], blob[10:]])).accepted
            assert (await client.install_snapshot(_meta(), b"")).accepted
            assert [(s, c) for _, s, c in handler.snapshots] == [
                (len(blob), zlib.crc32(blob)), (len(blob), zlib.crc32(blob)), (0, 0),
            ]
            with pytest.raises(TypeError, match="data"):
                await client.install_snapshot(_meta(), "text")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="meta"):
                await client.install_snapshot(b"", blob)  # type: ignore[arg-type]

    asyncio.run(main())


async def _raw_upload(port: int, messages: list[SnapshotChunk]) -> SnapshotAck:
    """Send ``messages`` with a bare stub (no checksum help from RaftClient)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RaftPeerStub(channel)
        call = stub.InstallSnapshot(timeout=10)
        # The server may refuse the stream at any message (e.g. the first, with
        # no meta): a later write then fails however the race goes, so the
        # outcome is read from the call's final status, not from write().
        try:
            for msg in messages:
                await call.write(msg)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass
        return await call  # type: ignore[no-any-return]


def _stream(chunks: list[bytes], *, size: int | None = None, crc: int | None = None,
            trailer: bool = True) -> list[SnapshotChunk]:
    meta = _meta()
    meta.cluster_id = "default"
    msgs = [SnapshotChunk(meta=meta)] + [SnapshotChunk(data=c) for c in chunks]
    real_crc = 0
    for c in chunks:
        real_crc = zlib.crc32(c, real_crc)
    if trailer:
        msgs.append(SnapshotChunk(trailer=SnapshotTrailer(
            total_size=sum(map(len, chunks)) if size is None else size,
            crc32=real_crc if crc is None else crc,
        )))
    return msgs


def _refused(port: int, messages: list[SnapshotChunk]) -> grpc.aio.AioRpcError:
    async def main() -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _raw_upload(port, messages)
        return info.value

    return asyncio.run(main())


@pytest.mark.parametrize(
    "case",
    ["bad-crc", "bad-size", "no-trailer", "oversized-chunk", "data-after-trailer", "no-meta"],
)
def test_damaged_snapshot_streams_are_refused(case: str) -> None:
    chunks = [os.urandom(1000), os.urandom(2000)]
    if case == "bad-crc":
        messages = _stream(chunks, crc=12345)
    elif case == "bad-size":
        messages = _stream(chunks, size=2999)
    elif case == "no-trailer":
        messages = _stream(chunks, trailer=False)
    elif case == "oversized-chunk":
        messages = _stream([os.urandom(SNAPSHOT_CHUNK_BYTES + 1)])
    elif case == "data-after-trailer":
        messages = [*_stream(chunks), SnapshotChunk(data=b"extra")]
    else:
        messages = _stream(chunks)[1:]

    async def main() -> None:
        async with serving() as (server, handler):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _raw_upload(server.port, messages)
            assert ("nexus-error", "snapshot-rejected") in tuple(info.value.trailing_metadata())
            assert handler.snapshots == []  # never handed over as complete
            if case != "no-meta":
                assert len(handler.snapshot_errors) == 1
                assert isinstance(handler.snapshot_errors[0], SnapshotCorrupted)
            # The server is unharmed.
            async with RaftClient(address_of(server)) as client:
                assert (await client.install_snapshot(_meta(), b"ok")).accepted

    asyncio.run(main())


def test_cut_off_upload_never_completes_on_the_server() -> None:
    async def main() -> None:
        handler = RecordingHandler()
        async with serving(handler) as (server, _):
            # The sender dies mid-stream: its connection goes away with no trailer sent.
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
            call = pb_grpc.RaftPeerStub(channel).InstallSnapshot(timeout=10)
            for msg in _stream([b"a" * 5000, b"b" * 5000], trailer=False):
                await call.write(msg)
            await asyncio.wait_for(handler.chunk_seen.wait(), 5)
            await channel.close()
            await asyncio.wait_for(handler.snapshot_ended.wait(), 5)
            assert handler.snapshots == []
            assert len(handler.snapshot_errors) == 1
            ended_by = handler.snapshot_errors[0]
            assert isinstance(ended_by, (SnapshotCorrupted, asyncio.CancelledError))
            async with RaftClient(address_of(server)) as client:
                assert (await client.install_snapshot(_meta(), b"ok")).accepted
            assert [(s, c) for _, s, c in handler.snapshots] == [(2, zlib.crc32(b"ok"))]

    asyncio.run(main())


def test_client_maps_rejection_to_snapshot_rejected() -> None:
    class Swallower(RecordingHandler):
        """Catches the corruption and claims success: the server must still refuse."""

        async def install_snapshot(self, meta, chunks):  # type: ignore[no-untyped-def]
            try:
                async for _ in chunks:
                    pass
            except SnapshotCorrupted:
                pass
            return SnapshotAck(term=meta.term, accepted=True)

    class Lazy(RecordingHandler):
        """Accepts without reading: the server verifies the rest itself."""

        async def install_snapshot(self, meta, chunks):  # type: ignore[no-untyped-def]
            return SnapshotAck(term=meta.term, accepted=True)

    class Failing(RecordingHandler):
        async def install_snapshot(self, meta, chunks):  # type: ignore[no-untyped-def]
            raise SnapshotCorrupted("handler found the data unusable")

    async def main() -> None:
        async with serving(Swallower()) as (server, _):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await _raw_upload(server.port, _stream([b"abc"], crc=1))
            assert info.value.code() == grpc.StatusCode.DATA_LOSS
        async with serving(Lazy()) as (server, _):
            with pytest.raises(grpc.aio.AioRpcError):
                await _raw_upload(server.port, _stream([b"abc"], crc=1))
            async with RaftClient(address_of(server)) as client:
                assert (await client.install_snapshot(_meta(), os.urandom(3_000_000))).accepted
        async with serving(Failing()) as (server, _), RaftClient(address_of(server)) as client:
            with pytest.raises(SnapshotRejected):
                await client.install_snapshot(_meta(), b"data")

    asyncio.run(main())


def test_handler_refusal_is_returned_as_ack() -> None:
    class Refuser(RecordingHandler):
        async def install_snapshot(self, meta, chunks):  # type: ignore[no-untyped-def]
            return SnapshotAck(term=9, accepted=False, reason="stale snapshot")

    async def main() -> None:
        async with serving(Refuser()) as (server, _), RaftClient(address_of(server)) as client:
            ack = await client.install_snapshot(_meta(), os.urandom(4_000_000))
            assert (ack.accepted, ack.term, ack.reason) == (False, 9, "stale snapshot")

    asyncio.run(main())


def test_failing_data_source_is_reraised_and_upload_discarded() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"abc"
        raise OSError("disk gone")

    def bad_items() -> list[object]:
        return [b"abc", "not bytes"]

    async def main() -> None:
        async with serving() as (server, handler), RaftClient(address_of(server)) as client:
            with pytest.raises(OSError, match="disk gone"):
                await client.install_snapshot(_meta(), failing())
            with pytest.raises(TypeError, match="must yield bytes"):
                await client.install_snapshot(_meta(), bad_items())  # type: ignore[arg-type]
            assert handler.snapshots == []

    asyncio.run(main())
