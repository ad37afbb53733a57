"""Backups of a RaftNode's state machine: a self-checking file format, writing and reading it.

A backup is one consistent state-machine snapshot (the same stream a leader
sends a lagging follower) wrapped with what a restore needs and a checksum::

    b"NXBACKUP" version:u8 meta_len:u32 meta(JSON)         header
    (len:u32 data)*                                         the snapshot stream's chunks
    len:u32 = 0  sha256(everything before these 32 bytes)   trailer

``meta`` holds the snapshot's applied ``index`` and ``term``, the cluster id
and members it was taken from, the state machine's name and the time.
:class:`BackupReader` verifies the header, every length and the final
sha256 while it streams, so a damaged, cut or padded file is refused
(:class:`~nexus_raft.errors.CorruptionError`) instead of restored. Chunks are
handed out as they are read; a caller that restores must treat the whole
restore as failed if the reader raises at the end (the checksum covers
everything, so it can only be confirmed after the last chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

from nexus_raft.errors import CorruptionError

__all__ = [
    "BackupMeta",
    "BackupReader",
    "describe",
    "encode_backup",
    "encode_backup_async",
    "new_meta",
    "read_backup_file",
    "stream_chunks",
    "verify_backup_file",
]

MAGIC = b"NXBACKUP"
VERSION = 1
_HEADER = struct.Struct(">8sBI")
_LEN = struct.Struct(">I")
_MAX_META = 1 << 20
_MAX_CHUNK = 64 << 20
_DIGEST = 32


@dataclass(frozen=True)
class BackupMeta:
    """What a backup is of: ``index``/``term`` of its snapshot, where it came from."""

    index: int
    term: int
    cluster_id: str = ""
    members: dict[str, str] = field(default_factory=dict)
    state_machine: str = ""
    created: float = 0.0
    member_id: int = 0

    def to_json(self) -> bytes:
        """The header's JSON."""
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> BackupMeta:
        """Parse the header's JSON (CorruptionError when it is not a backup header)."""
        try:
            data = json.loads(raw.decode("utf-8"))
            meta = cls(
                index=int(data["index"]),
                term=int(data["term"]),
                cluster_id=str(data.get("cluster_id", "")),
                members={str(k): str(v) for k, v in dict(data.get("members", {})).items()},
                state_machine=str(data.get("state_machine", "")),
                created=float(data.get("created", 0.0)),
                member_id=int(data.get("member_id", 0)),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise CorruptionError(f"backup header is damaged: {exc}") from None
        if meta.index < 0 or meta.term < 0:
            raise CorruptionError("backup header is damaged: negative index or term")
        return meta


def new_meta(
    index: int,
    term: int,
    *,
    cluster_id: str,
    members: Mapping[int, str],
    state_machine: str,
    member_id: int,
) -> BackupMeta:
    """Metadata for a backup taken now."""
    return BackupMeta(
        index=index,
        term=term,
        cluster_id=cluster_id,
        members={str(k): v for k, v in sorted(members.items())},
        state_machine=state_machine,
        created=time.time(),
        member_id=member_id,
    )


def _header(meta: BackupMeta) -> bytes:
    raw = meta.to_json()
    return _HEADER.pack(MAGIC, VERSION, len(raw)) + raw


def encode_backup(meta: BackupMeta, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The backup file's bytes, piece by piece (one snapshot chunk in memory at a time)."""
    digest = hashlib.sha256()
    head = _header(meta)
    digest.update(head)
    yield head
    for chunk in chunks:
        if not chunk:
            continue
        piece = _LEN.pack(len(chunk)) + bytes(chunk)
        digest.update(piece)
        yield piece
    end = _LEN.pack(0)
    digest.update(end)
    yield end + digest.digest()


async def encode_backup_async(
    meta: BackupMeta, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """:func:`encode_backup` over an async chunk source."""
    digest = hashlib.sha256()
    head = _header(meta)
    digest.update(head)
    yield head
    async for chunk in chunks:
        if chunk:
            piece = _LEN.pack(len(chunk)) + bytes(chunk)
            digest.update(piece)
            yield piece
    end = _LEN.pack(0)
    digest.update(end)
    yield end + digest.digest()


async def stream_chunks(chunks: Iterable[bytes], executor: Executor) -> AsyncIterator[bytes]:
    """Iterate a blocking chunk source (a store snapshot) in ``executor``, off the event loop."""
    loop = asyncio.get_running_loop()
    it = iter(chunks)
    done = object()
    while True:
        chunk = await loop.run_in_executor(executor, next, it, done)
        if chunk is done:
            return
        assert isinstance(chunk, bytes)
        yield chunk


class BackupReader:
    """Parses a backup stream fed in arbitrary pieces; checks everything.

    ``feed(data)`` returns the snapshot chunks completed by ``data``; ``meta``
    is set once the header is in; ``finish()`` raises CorruptionError unless
    the stream ended exactly after a trailer whose sha256 matched.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._digest = hashlib.sha256()
        self.meta: BackupMeta | None = None
        self.done = False
        self.data_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Parse ``data``; the snapshot chunks it completed, in order."""
        if self.done and data:
            raise CorruptionError("bytes after the end of the backup")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        if self.meta is None:
            if len(buf) < _HEADER.size:
                return out
            magic, version, meta_len = _HEADER.unpack_from(buf)
            if magic != MAGIC:
                raise CorruptionError("not a nexus_raft backup (bad magic)")
            if version != VERSION:
                raise CorruptionError(f"backup format version {version} is not supported")
            if meta_len > _MAX_META:
                raise CorruptionError("backup header is damaged (oversized)")
            if len(buf) < _HEADER.size + meta_len:
                return out
            pos = _HEADER.size + meta_len
            self.meta = BackupMeta.from_json(bytes(buf[_HEADER.size : pos]))
            self._digest.update(buf[:pos])
        while not self.done and len(buf) - pos >= _LEN.size:
            (n,) = _LEN.unpack_from(buf, pos)
            if n == 0:
                if len(buf) - pos < _LEN.size + _DIGEST:
                    break
                self._digest.update(buf[pos : pos + _LEN.size])
                want = bytes(buf[pos + _LEN.size : pos + _LEN.size + _DIGEST])
                if self._digest.digest() != want:
                    raise CorruptionError("backup checksum mismatch: the file is damaged")
                pos += _LEN.size + _DIGEST
                self.done = True
                break
            if n > _MAX_CHUNK:
                raise CorruptionError("backup is damaged (impossible chunk length)")
            if len(buf) - pos < _LEN.size + n:
                break
            self._digest.update(buf[pos : pos + _LEN.size + n])
            out.append(bytes(buf[pos + _LEN.size : pos + _LEN.size + n]))
            self.data_bytes += n
            pos += _LEN.size + n
        del buf[:pos]
        if self.done and buf:
            raise CorruptionError("bytes after the end of the backup")
        return out

    def finish(self) -> BackupMeta:
        """Check the stream ended complete and intact; returns its metadata."""
        if self.meta is None or not self.done or self._buf:
            raise CorruptionError("backup is truncated (no valid trailer)")
        return self.meta


def read_backup_file(f: BinaryIO, piece: int = 1 << 20) -> Iterator[bytes]:
    """The snapshot chunks of the backup in ``f``; CorruptionError at the end if damaged."""
    reader = BackupReader()
    while True:
        data = f.read(piece)
        if not data:
            break
        yield from reader.feed(data)
    reader.finish()


def verify_backup_file(f: BinaryIO) -> tuple[BackupMeta, int, str]:
    """Read the whole backup: (metadata, bytes of state-machine data, sha256 hex of the file)."""
    reader = BackupReader()
    whole = hashlib.sha256()
    while True:
        data = f.read(1 << 20)
        if not data:
            break
        whole.update(data)
        reader.feed(data)
    return reader.finish(), reader.data_bytes, whole.hexdigest()


def describe(meta: BackupMeta) -> dict[str, Any]:
    """The metadata as a JSON-ready dict."""
    return asdict(meta)
