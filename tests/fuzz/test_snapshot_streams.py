"""Snapshot streams: the transport's chunk framing, the node's header, the KV record stream.

A snapshot arrives from a peer as a stream (transport/snapshot.py checks the
chunk framing and the trailer, consensus/node/snapshot.py parses the node
header and stages the data, kv/snapshot.py parses the records). Whatever
arrives, each layer ends with the data, ``SnapshotCorrupted`` (transport) or
``CorruptionError`` (node, KV): never another exception, never a hang, never
a staged file left behind.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from nexus_raft.consensus.node.snapshot import encode_header, receive_snapshot
from nexus_raft.errors import CorruptionError
from nexus_raft.kv.snapshot import SnapshotReader, encode_stream
from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport.errors import SnapshotCorrupted
from nexus_raft.transport.snapshot import ChunkReader
from tests.fuzz.settings import fuzz, fuzz_io


async def _aiter(items: Iterable[object]) -> AsyncIterator[object]:
    for x in items:
        yield x


# --- transport: chunk framing --------------------------------------------------------

part = st.one_of(
    st.builds(lambda d: pb.SnapshotChunk(data=d), st.binary(max_size=64)),
    st.builds(lambda n, c: pb.SnapshotChunk(trailer=pb.SnapshotTrailer(total_size=n, crc32=c)),
              st.integers(0, 300), st.integers(0, 2**32 - 1)),
    st.just(pb.SnapshotChunk()),
)


@st.composite
def streams(draw: st.DrawFn) -> list[pb.SnapshotChunk]:
    """Random parts, or a valid stream with one part damaged, dropped or added."""
    if draw(st.booleans()):
        return draw(st.lists(part, max_size=6))
    chunks = draw(st.lists(st.binary(max_size=40), max_size=4))
    msgs = [pb.SnapshotChunk(data=c) for c in chunks]
    data = b"".join(chunks)
    msgs.append(pb.SnapshotChunk(trailer=pb.SnapshotTrailer(total_size=len(data),
                                                            crc32=zlib.crc32(data))))
    how = draw(st.sampled_from(("keep", "drop", "add", "swap")))
    if how == "drop":
        del msgs[draw(st.integers(0, len(msgs) - 1))]
    elif how == "add":
        msgs.insert(draw(st.integers(0, len(msgs))), draw(part))
    elif how == "swap" and len(msgs) > 1:
        i = draw(st.integers(0, len(msgs) - 2))
        msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
    return msgs


async def _read(msgs: list[pb.SnapshotChunk]) -> tuple[bytes, bool]:
    reader = ChunkReader(_aiter(msgs))  # type: ignore[arg-type]
    got = b""
    try:
        async for chunk in reader:
            got += chunk
    except SnapshotCorrupted:
        return got, False
    return got, reader.verified


@fuzz
@given(streams())
def test_chunk_reader(msgs: list[pb.SnapshotChunk]) -> None:
    got, ok = asyncio.run(asyncio.wait_for(_read(msgs), 10))
    if ok:
        # Verified means: every data part, in order, then one matching trailer, then nothing.
        data = b"".join(m.data for m in msgs if m.WhichOneof("part") == "data")
        assert got == data
        assert msgs[-1].WhichOneof("part") == "trailer"
        assert sum(m.WhichOneof("part") == "trailer" for m in msgs) == 1


# --- node: header and staging ----------------------------------------------------------


@st.composite
def node_streams(draw: st.DrawFn) -> list[bytes]:
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=80))
    else:
        addrs = draw(st.dictionaries(st.integers(1, 9), st.text(max_size=8), max_size=3))
        raw = bytearray(encode_header(addrs) + draw(st.binary(max_size=30)))
        for _ in range(draw(st.integers(0, 2))):
            if raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = bytes(raw)
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


@fuzz_io
@given(node_streams(), st.booleans())
def test_node_snapshot_header(chunks: list[bytes], stage: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(1) as ex:
        staging = Path(tmp) / "staging" if stage else None
        try:
            staged = asyncio.run(asyncio.wait_for(
                receive_snapshot(7, _aiter(chunks), staging, ex), 10))  # type: ignore[arg-type]
        except CorruptionError:
            left = list(staging.iterdir()) if staging is not None and staging.exists() else []
            assert left == [], f"a refused stream left {left}"
            return
        assert all(isinstance(k, int) and isinstance(v, str) for k, v in staged.addresses.items())
        staged.discard()


# --- KV: record stream ---------------------------------------------------------------------


@st.composite
def kv_streams(draw: st.DrawFn) -> list[bytes]:
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=120))
    else:
        pairs = draw(st.lists(st.tuples(st.binary(min_size=1, max_size=6),
                                        st.binary(max_size=6)), max_size=4))
        raw = bytearray(b"".join(encode_stream(draw(st.integers(0, 99)), [(1, pairs)], 16)))
        for _ in range(draw(st.integers(0, 2))):
            how = draw(st.sampled_from(("flip", "cut", "grow")))
            if how == "flip" and raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            elif how == "cut" and raw:
                del raw[draw(st.integers(0, len(raw) - 1)):]
            else:
                raw += draw(st.binary(min_size=1, max_size=6))
        raw = bytes(raw)
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


@fuzz
@given(kv_streams())
def test_kv_snapshot_reader(chunks: list[bytes]) -> None:
    reader = SnapshotReader()
    try:
        for c in chunks:
            for code, key, value in reader.feed(c):
                assert isinstance(code, int) and isinstance(key, bytes)
                assert isinstance(value, bytes)
        reader.finish()
    except CorruptionError:
        return
    assert reader.index is not None
