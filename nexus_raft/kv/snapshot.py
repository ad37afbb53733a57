"""The KV state machine's snapshot stream: length-prefixed records in bounded chunks.

Layout (big-endian)::

    header   b"NXKV" version:u8 index:u64
    record   tree:u8 key_len:u32 value_len:u32 key value      (repeated)
    trailer  0xFF records:u64

``tree`` numbers the ``kv.*`` trees (:data:`TREE_CODES`). The writer emits
chunks of about ``chunk_bytes``; a record may span chunks, and the reader
accepts any re-chunking of the byte stream (a transport may split or merge
chunks). The trailer's count detects a truncated stream.

A record's key and value together are at most :data:`MAX_RECORD_BYTES`: the
writer refuses to emit a longer one and the reader refuses one as soon as its
record header declares more, so a corrupt or hostile length never makes the
reader buffer the rest of the stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from nexus_raft.errors import CorruptionError, TooLarge
from nexus_raft.storage import Batch, Store, Tree

__all__ = ["MAX_RECORD_BYTES", "TREE_CODES", "SnapshotReader", "encode_stream", "load_stream"]

_RESTORE_BATCH_BYTES = 4 << 20

MAGIC = b"NXKV"
VERSION = 2
# Version 1 streams (format-1 records, no lease trees) are still read: the
# state machine migrates what they load. Version 2 is refused by old code.
_READABLE = (1, 2)
_HEADER = struct.Struct(">4sBQ")
_RECORD = struct.Struct(">BII")
_TRAILER = struct.Struct(">BQ")
_END = 0xFF

MAX_RECORD_BYTES = 64 << 20
"""Bound on one record's key plus value. Every value the state machine holds
came through one log entry, and a peer message (so an entry) is at most 16 MiB
(``transport.options.MAX_MESSAGE_BYTES``); the widest records (an event with
its previous value, a session's stored result) hold two values and a key."""

TREE_CODES: dict[str, int] = {
    "kv.data": 1,
    "kv.meta": 2,
    "kv.sessions": 3,
    "kv.events": 4,
    "kv.leases": 5,
    "kv.lease_keys": 6,
}
"""The trees a snapshot carries, with their record codes."""


def encode_stream(
    index: int, trees: Iterable[tuple[int, Iterable[tuple[bytes, bytes]]]], chunk_bytes: int
) -> Iterator[bytes]:
    """Chunks of the stream for ``trees`` (code, pairs); lazily, one chunk in memory.

    Raises :class:`~nexus_raft.errors.TooLarge` on a record over
    :data:`MAX_RECORD_BYTES` (a stream every reader would refuse).
    """
    parts: list[bytes] = [_HEADER.pack(MAGIC, VERSION, index)]
    size = _HEADER.size
    count = 0
    pack = _RECORD.pack
    for code, pairs in trees:
        for key, value in pairs:
            if len(key) + len(value) > MAX_RECORD_BYTES:
                raise TooLarge(
                    f"KV snapshot record of {len(key) + len(value)} bytes in tree code {code}: "
                    f"the limit is {MAX_RECORD_BYTES}"
                )
            parts.append(pack(code, len(key), len(value)))
            parts.append(key)
            parts.append(value)
            size += _RECORD.size + len(key) + len(value)
            count += 1
            if size >= chunk_bytes:
                yield b"".join(parts)
                parts = []
                size = 0
    parts.append(_TRAILER.pack(_END, count))
    yield b"".join(parts)


class SnapshotReader:
    """Incremental parser: ``feed(chunk)`` returns the complete records it now holds.

    Memory is bounded by one chunk plus one record of at most
    ``max_record_bytes``: a record header that declares more (or an unknown
    tree code) raises CorruptionError at once, before its bytes are awaited.
    Call :meth:`finish` at the end; it raises CorruptionError if the stream
    was cut short.
    """

    __slots__ = ("_buf", "_count", "_done", "_max_record", "index")

    def __init__(self, *, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        if not isinstance(max_record_bytes, int) or isinstance(max_record_bytes, bool):
            raise TypeError(
                f"max_record_bytes must be an int, not {type(max_record_bytes).__name__}"
            )
        if max_record_bytes < 0:
            raise ValueError("max_record_bytes must not be negative")
        self._max_record = max_record_bytes
        self._buf = bytearray()
        self._count = 0
        self._done = False
        self.index: int | None = None

    def feed(self, chunk: bytes) -> list[tuple[int, bytes, bytes]]:
        """Parse ``chunk``; (tree code, key, value) of each record completed by it."""
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"snapshot chunks must be bytes, not {type(chunk).__name__}")
        buf = self._buf
        buf += chunk
        out: list[tuple[int, bytes, bytes]] = []
        pos = 0
        end = len(buf)
        if self.index is None:
            if end < _HEADER.size:
                return out
            magic, version, index = _HEADER.unpack_from(buf)
            if magic != MAGIC or version not in _READABLE:
                raise CorruptionError("not a KV snapshot stream (bad magic or version)")
            self.index = index
            pos = _HEADER.size
        while pos < end:
            if self._done:
                raise CorruptionError("bytes after the end of the KV snapshot stream")
            code = buf[pos]
            if code == _END:
                if end - pos < _TRAILER.size:
                    break
                _, count = _TRAILER.unpack_from(buf, pos)
                if count != self._count:
                    raise CorruptionError(
                        f"KV snapshot stream has {self._count} records, its trailer says {count}"
                    )
                self._done = True
                pos += _TRAILER.size
                continue
            if end - pos < _RECORD.size:
                break
            code, klen, vlen = _RECORD.unpack_from(buf, pos)
            if code not in _CODES:
                raise CorruptionError(f"unknown tree code {code} in KV snapshot stream")
            if klen + vlen > self._max_record:
                raise CorruptionError(
                    f"KV snapshot record {self._count + 1} declares {klen + vlen} bytes "
                    f"(key {klen}, value {vlen}): the limit is {self._max_record}"
                )
            stop = pos + _RECORD.size + klen + vlen
            if stop > end:
                break
            kstart = pos + _RECORD.size
            out.append((code, bytes(buf[kstart : kstart + klen]), bytes(buf[kstart + klen : stop])))
            self._count += 1
            pos = stop
        del buf[:pos]
        return out

    def finish(self) -> None:
        """Check that the whole stream arrived."""
        if self.index is None or not self._done or self._buf:
            raise CorruptionError("KV snapshot stream is truncated")


_CODES = frozenset(TREE_CODES.values())


def load_stream(
    store: Store,
    trees: dict[int, Tree],
    index: int,
    chunks: Iterable[bytes],
    *,
    skip: tuple[int, bytes] | None = None,
) -> None:
    """Write a stream's records into ``trees`` (by code) in ~4 MiB batches; ``skip`` one record.

    CorruptionError if the stream is for another index than ``index`` or cut short.
    """
    reader = SnapshotReader()
    batch = Batch()
    size = 0
    for chunk in chunks:
        for code, key, value in reader.feed(chunk):
            if skip is not None and (code, key) == skip:
                continue
            batch.insert(key, value, tree=trees[code])
            size += len(key) + len(value) + 16
            if size >= _RESTORE_BATCH_BYTES:
                store.apply_batch(batch)
                batch = Batch()
                size = 0
        if reader.index is not None and reader.index != index:
            raise CorruptionError(
                f"snapshot stream covers index {reader.index}, restore was given {index}"
            )
    reader.finish()
    store.apply_batch(batch)
