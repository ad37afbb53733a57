"""Snapshot transfer between nodes: the data framing, streaming out, staging in.

A snapshot stream's data (what follows the transport's ``SnapshotMeta``) is::

    MAGIC | u32 header length | header (JSON: {"addresses": {"<id>": "<endpoint>"},
                                               "attributes": {"<id>": {...}}})
    | state-machine chunks (``StateMachine.snapshot()``, possibly none)

The header carries the sender's address book: a node that installs a
snapshot may learn members whose configuration entries were compacted away,
and the snapshot's ``ConfState`` has ids only. It also carries the sender's
member attributes (:mod:`~nexus_raft.consensus.node.attributes`), whose log
entries may be compacted away too; a header without them (an older sender)
leaves the receiver's attributes as they are.

Sending (:class:`SnapshotStream`) reads the state machine's chunks in an
executor thread one at a time (never the whole state in memory, and the event
loop keeps serving). Receiving
writes the chunks to a staging file under the node's data dir; the file is
handed to ``StateMachine.restore`` only when the core decides to install the
snapshot, and removed in every other case.

Installing is one recoverable step (see the driver): the staged file is made
durable as ``install-<index>.snap`` (:func:`keep_for_install`) before the
log records the snapshot, and removed only once the restored state is
durable. So whenever the state machine is behind the log's snapshot, that
snapshot's data is on disk, and a restart finishes the install from it
(``boot.finish_install``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import struct
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from nexus_raft.consensus.state_machine import SnapshotSource
from nexus_raft.errors import CorruptionError

__all__ = [
    "MAGIC",
    "SnapshotStream",
    "StagedSnapshot",
    "clean_staging",
    "encode_header",
    "install_path",
    "iter_file",
    "keep_for_install",
    "receive_snapshot",
]

MAGIC = b"NXSNAP1\n"
_LEN = struct.Struct(">I")
_MAX_HEADER = 16 << 20
_READ_CHUNK = 1 << 20
_counter = itertools.count(1)


def encode_header(
    addresses: dict[int, str], attributes: dict[str, Any] | None = None
) -> bytes:
    """The framing that opens a snapshot's data: magic, length, JSON address book (+ attributes)."""
    doc: dict[str, Any] = {"addresses": {str(k): v for k, v in sorted(addresses.items())}}
    if attributes is not None:
        doc["attributes"] = attributes
    body = orjson.dumps(doc)
    return MAGIC + _LEN.pack(len(body)) + body


def _decode_header(body: bytes) -> tuple[dict[int, str], dict[str, Any] | None]:
    try:
        doc = orjson.loads(body)
        raw = doc["addresses"]
        attributes = doc.get("attributes")
        if attributes is not None and not isinstance(attributes, dict):
            raise TypeError("attributes must be an object")
        return {int(k): str(v) for k, v in raw.items()}, attributes
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError(f"bad snapshot header: {exc}") from exc


class SnapshotStream:
    """The data of an outgoing snapshot: ``header``, then ``source``'s chunks.

    An async iterator for ``RaftClient.install_snapshot``. Each chunk is read
    in ``executor`` (the store read may block). :meth:`close` releases the
    source, and waits for a read still running in a worker thread (e.g. when
    the upload was cancelled mid-chunk) so a view is never released under it.
    """

    def __init__(self, header: bytes, source: SnapshotSource | None, executor: Executor) -> None:
        self._header: bytes | None = header
        self._source = source
        self._it: Iterator[bytes] | None = iter(source) if source is not None else None
        self._executor = executor
        self._pending: concurrent.futures.Future[bytes | None] | None = None
        self.sent = 0

    def __aiter__(self) -> SnapshotStream:
        return self

    async def __anext__(self) -> bytes:
        if self._header is not None:
            header, self._header = self._header, None
            self.sent += len(header)
            return header
        while self._it is not None:
            self._pending = self._executor.submit(next, self._it, None)
            chunk = await asyncio.wrap_future(self._pending)
            if chunk is None:
                self._it = None
                self.close()
                break
            if chunk:
                self.sent += len(chunk)
                return chunk
        raise StopAsyncIteration

    def close(self) -> None:
        """Release the source (idempotent)."""
        source, self._source = self._source, None
        self._it = None
        if source is None:
            return
        pending = self._pending
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda _: source.close())
        else:
            source.close()


@dataclass
class StagedSnapshot:
    """A received snapshot waiting for the core's decision.

    ``path`` holds the state-machine data (None when the receiver keeps none:
    a witness); ``addresses`` is the sender's address book, ``attributes``
    its member attributes (None: the sender sent none).
    """

    index: int
    path: Path | None
    addresses: dict[int, str]
    size: int = 0
    attributes: dict[str, Any] | None = None

    def take(self) -> Path | None:
        """Hand the staging file over to the caller (``discard`` leaves it alone from now on)."""
        path, self.path = self.path, None
        return path

    def discard(self) -> None:
        """Remove the staging file (idempotent)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.path = None


async def receive_snapshot(
    index: int, chunks: AsyncIterator[bytes], staging_dir: Path | None, executor: Executor
) -> StagedSnapshot:
    """Read an incoming snapshot's data: parse the header, stage the rest on disk.

    ``staging_dir`` None: the data is read and dropped (a witness keeps no
    state). A damaged stream raises (the transport's ``SnapshotCorrupted``, or
    CorruptionError for a bad header) and leaves no file behind.
    """
    loop = asyncio.get_running_loop()
    buf = b""
    addresses: dict[int, str] | None = None
    attributes: dict[str, Any] | None = None
    staged = StagedSnapshot(index, None, {})
    fh = None
    try:
        if staging_dir is not None:
            staging_dir.mkdir(parents=True, exist_ok=True)
            staged.path = staging_dir / f"incoming-{index}-{os.getpid()}-{next(_counter)}.part"
            fh = await loop.run_in_executor(executor, open, staged.path, "wb")
        async for chunk in chunks:
            if addresses is None:
                buf += chunk
                if len(buf) < len(MAGIC) + _LEN.size:
                    continue
                if not buf.startswith(MAGIC):
                    raise CorruptionError("snapshot data does not start with the node header")
                (n,) = _LEN.unpack_from(buf, len(MAGIC))
                if n > _MAX_HEADER:
                    raise CorruptionError(f"snapshot header of {n} bytes is too large")
                start = len(MAGIC) + _LEN.size
                if len(buf) < start + n:
                    continue
                addresses, attributes = _decode_header(buf[start : start + n])
                chunk, buf = buf[start + n :], b""
                if not chunk:
                    continue
            staged.size += len(chunk)
            if fh is not None:
                await loop.run_in_executor(executor, fh.write, chunk)
        if addresses is None:
            raise CorruptionError("snapshot stream ended inside the node header")
        if fh is not None:
            await loop.run_in_executor(executor, fh.close)
            fh = None
        staged.addresses = addresses
        staged.attributes = attributes
        return staged
    except BaseException:
        if fh is not None:
            fh.close()
        staged.discard()
        raise
    finally:
        if fh is not None:
            fh.close()


def install_path(directory: Path, index: int) -> Path:
    """Where the data of the snapshot at ``index`` is kept while it is installed."""
    return directory / f"install-{index}.snap"


def keep_for_install(staged: Path, kept: Path) -> None:
    """Make ``staged`` durable as ``kept``: fsync the file, rename it, fsync the directory."""
    with open(staged, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(staged, kept)
    _fsync_dir(kept.parent)


def clean_staging(directory: Path, keep: Path | None = None) -> None:
    """Remove snapshot files a crash left in ``directory`` (all but ``keep``)."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        if p != keep and p.name.startswith(("incoming-", "install-")):
            p.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_file(path: Path) -> Iterator[bytes]:
    """A staged snapshot's data as chunks (for ``StateMachine.restore``)."""
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_READ_CHUNK)
            if not chunk:
                return
            yield chunk
