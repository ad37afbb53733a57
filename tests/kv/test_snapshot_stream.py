"""The KV snapshot stream's record bound (kv/snapshot.py).

A record header declares its key and value lengths (up to 4 GiB each); the
reader used to buffer whatever followed until that many bytes arrived or the
stream ended. A record declaring more than the bound is now refused as soon
as its header is read, and the writer never emits one.
"""

from __future__ import annotations

import struct

import pytest

from nexus_raft.errors import CorruptionError, TooLarge
from nexus_raft.kv.snapshot import (
    MAX_RECORD_BYTES,
    TREE_CODES,
    SnapshotReader,
    encode_stream,
)

DATA = TREE_CODES["kv.data"]
HEADER = struct.pack(">4sBQ", b"NXKV", 2, 7)


def record_header(code: int, klen: int, vlen: int) -> bytes:
    return struct.pack(">BII", code, klen, vlen)


def test_record_declaring_more_than_the_bound_is_refused_before_its_bytes_arrive() -> None:
    reader = SnapshotReader(max_record_bytes=1024)
    assert reader.feed(HEADER) == []
    # 4 GiB declared: refused at once, with no byte of the record's body fed.
    with pytest.raises(CorruptionError, match=r"declares 4294967295 bytes .* limit is 1024"):
        reader.feed(record_header(DATA, 0, 0xFFFF_FFFF))


def test_oversized_record_is_refused_when_its_header_arrives_in_pieces() -> None:
    reader = SnapshotReader(max_record_bytes=1024)
    head = HEADER + record_header(DATA, 600, 600)
    for b in head[:-1]:
        assert reader.feed(bytes([b])) == []  # the header is incomplete: nothing to judge
    with pytest.raises(CorruptionError, match="limit is 1024"):
        reader.feed(head[-1:])


def test_default_bound_refuses_a_huge_declared_record_at_once() -> None:
    reader = SnapshotReader()
    reader.feed(HEADER)
    with pytest.raises(CorruptionError, match=f"limit is {MAX_RECORD_BYTES}"):
        reader.feed(record_header(DATA, 16, MAX_RECORD_BYTES))  # one byte too many


def test_unknown_tree_code_is_refused_before_its_bytes_arrive() -> None:
    reader = SnapshotReader()
    reader.feed(HEADER)
    with pytest.raises(CorruptionError, match="unknown tree code 77"):
        reader.feed(record_header(77, 10, 1 << 20))


def test_records_at_the_bound_pass_in_any_chunking() -> None:
    pairs = [(b"k", b"v" * 1023), (b"key", b"")]
    raw = b"".join(encode_stream(7, [(DATA, pairs)], chunk_bytes=100))
    for step in (1, 7, len(raw)):
        reader = SnapshotReader(max_record_bytes=1024)
        got = []
        for i in range(0, len(raw), step):
            got += reader.feed(raw[i : i + step])
        reader.finish()
        assert got == [(DATA, k, v) for k, v in pairs]
        assert reader.index == 7


def test_writer_refuses_a_record_over_the_bound() -> None:
    class Huge(bytes):
        """A value that claims the bound's length without allocating it."""

        def __len__(self) -> int:
            return MAX_RECORD_BYTES

    stream = encode_stream(7, [(DATA, [(b"k", Huge())])], chunk_bytes=1 << 20)
    with pytest.raises(TooLarge, match=f"the limit is {MAX_RECORD_BYTES}"):
        list(stream)


def test_bad_bound_arguments() -> None:
    with pytest.raises(TypeError, match="max_record_bytes"):
        SnapshotReader(max_record_bytes="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_record_bytes"):
        SnapshotReader(max_record_bytes=-1)
