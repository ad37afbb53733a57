"""The InstallSnapshot stream format, from both ends.

A stream is one ``SnapshotChunk(meta=...)``, then ``SnapshotChunk(data=...)``
messages of at most :data:`SNAPSHOT_CHUNK_BYTES` each, then exactly one
``SnapshotChunk(trailer=...)`` holding the total size and the ``zlib.crc32``
of all data. The sender computes both while it streams; the receiver
recomputes them while it reads and compares at the trailer. Anything else
(no trailer, data after it, a second meta, an oversized chunk, a size or
checksum mismatch) is a damaged stream.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import TypeAlias

from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport.errors import SnapshotCorrupted
from nexus_raft.transport.options import SNAPSHOT_CHUNK_BYTES

__all__ = ["ChunkReader", "SnapshotData", "SourceError", "check_data", "encode_stream"]

SnapshotData: TypeAlias = "bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]"
"""What ``RaftClient.install_snapshot`` accepts as the snapshot's data."""

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _split(piece: bytes | bytearray | memoryview) -> Iterable[bytes]:
    """``piece`` as chunks of at most SNAPSHOT_CHUNK_BYTES (no copy when it fits)."""
    if isinstance(piece, bytes) and len(piece) <= SNAPSHOT_CHUNK_BYTES:
        if piece:
            yield piece
        return
    view = memoryview(piece).cast("B")
    for start in range(0, len(view), SNAPSHOT_CHUNK_BYTES):
        yield bytes(view[start : start + SNAPSHOT_CHUNK_BYTES])


async def _pieces(data: SnapshotData) -> AsyncIterator[bytes | bytearray | memoryview]:
    if isinstance(data, _BYTES_LIKE):
        yield data
    elif isinstance(data, AsyncIterable):
        async for piece in data:
            yield _check_piece(piece)
    elif isinstance(data, Iterable) and not isinstance(data, str):
        for piece in data:
            yield _check_piece(piece)
    else:
        raise TypeError(
            f"data must be bytes or an (async) iterable of bytes, not {type(data).__name__}"
        )


def _check_piece(piece: object) -> bytes | bytearray | memoryview:
    if not isinstance(piece, _BYTES_LIKE):
        raise TypeError(f"data must yield bytes, got {type(piece).__name__}")
    return piece


def check_data(data: object) -> None:
    """Raise TypeError early when ``data`` cannot be snapshot data."""
    if isinstance(data, (*_BYTES_LIKE, AsyncIterable)):
        return
    if isinstance(data, Iterable) and not isinstance(data, str):
        return
    raise TypeError(
        f"data must be bytes or an (async) iterable of bytes, not {type(data).__name__}"
    )


class SourceError:
    """Holds an exception raised by the caller's data while gRPC consumed it.

    gRPC cancels a call whose request iterator raises, and the caller would
    only see ``CancelledError``; :func:`encode_stream` records the exception
    here and ends the stream without a trailer instead (so the receiver
    refuses it), and the client re-raises the original exception.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None


async def encode_stream(
    meta: pb.SnapshotMeta, data: SnapshotData, source: SourceError
) -> AsyncIterator[pb.SnapshotChunk]:
    """The messages of one InstallSnapshot stream for ``meta`` and ``data``."""
    yield pb.SnapshotChunk(meta=meta)
    crc = 0
    size = 0
    try:
        async for piece in _pieces(data):
            for chunk in _split(piece):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                yield pb.SnapshotChunk(data=chunk)
    except Exception as exc:
        source.error = exc
        return  # no trailer: the receiver refuses the stream
    yield pb.SnapshotChunk(trailer=pb.SnapshotTrailer(total_size=size, crc32=crc))


class ChunkReader:
    """Server side: the data chunks of one stream, verified as they arrive.

    Iterating yields each data chunk. When the trailer arrives and matches,
    iteration ends normally; in every other case (checksum or size mismatch,
    the stream ending without a trailer, a protocol violation) it raises
    :class:`SnapshotCorrupted` instead, so the consumer never sees a damaged
    stream end like a complete one.

    Invariant: ``verified`` is True only after a matching trailer and only if
    nothing follows it.
    """

    def __init__(self, messages: AsyncIterator[pb.SnapshotChunk]) -> None:
        self._messages = messages
        self._crc = 0
        self._size = 0
        self._done = False
        self.verified = False
        self.error: SnapshotCorrupted | None = None

    @property
    def received_bytes(self) -> int:
        """Data bytes received so far."""
        return self._size

    def __aiter__(self) -> ChunkReader:
        return self

    def _fail(self, reason: str) -> SnapshotCorrupted:
        self._done = True
        self.error = SnapshotCorrupted(reason)
        return self.error

    async def __anext__(self) -> bytes:
        if self._done:
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        try:
            msg = await self._messages.__anext__()
        except StopAsyncIteration:
            raise self._fail(
                f"snapshot stream ended after {self._size} bytes without a trailer"
            ) from None
        part = msg.WhichOneof("part")
        if part == "data":
            chunk = msg.data
            if len(chunk) > SNAPSHOT_CHUNK_BYTES:
                raise self._fail(f"snapshot chunk of {len(chunk)} bytes exceeds the 1 MiB limit")
            self._crc = zlib.crc32(chunk, self._crc)
            self._size += len(chunk)
            return chunk
        if part == "trailer":
            await self._check_trailer(msg.trailer)
            raise StopAsyncIteration
        raise self._fail(f"unexpected {part or 'empty'} message inside a snapshot stream")

    async def _check_trailer(self, trailer: pb.SnapshotTrailer) -> None:
        if trailer.total_size != self._size:
            raise self._fail(
                f"snapshot size mismatch: trailer says {trailer.total_size}, got {self._size}"
            )
        if trailer.crc32 != self._crc:
            raise self._fail(
                f"snapshot checksum mismatch: trailer says {trailer.crc32:#010x}, "
                f"got {self._crc:#010x}"
            )
        try:
            extra = await self._messages.__anext__()
        except StopAsyncIteration:
            self._done = True
            self.verified = True
            return
        raise self._fail(f"{extra.WhichOneof('part') or 'empty'} message after the trailer")

    async def drain(self) -> None:
        """Read (and verify) whatever the consumer left unread."""
        async for _ in self:
            pass
