"""Saving a backup from one member: the client side of the ``Backup`` RPC.

The stream's bytes are written to the caller's file as they arrive and
checked on the way (:class:`~nexus_raft.consensus.node.backup.BackupReader`:
header, lengths, the sha256 trailer); a stream that ends without a valid
trailer, or a member that answers an error, raises and leaves the file
incomplete (callers write to a temporary name and rename on success).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import grpc

from nexus_raft.consensus.node.backup import BackupMeta, BackupReader
from nexus_raft.errors import Unavailable
from nexus_raft.kv.client.router import Router, normalize_endpoint
from nexus_raft.kv.wire import OK, exception_from_error, kv_pb2

__all__ = ["save_backup"]

Progress = Callable[[int], None]


async def save_backup(
    router: Router,
    target: str,
    out: BinaryIO,
    *,
    cluster_id: str,
    timeout: float,
    progress: Progress | None = None,
) -> BackupMeta:
    """Stream ``target``'s backup into ``out``; returns its verified metadata."""
    target = normalize_endpoint(target)[0]
    reader = BackupReader()
    written = 0
    call: Any = router.stub(target).Backup(
        kv_pb2.BackupRequest(cluster_id=cluster_id), timeout=timeout
    )
    try:
        async for message in call:
            if message.error.code != OK:
                raise exception_from_error(message.error, where=target)
            data = bytes(message.data)
            reader.feed(data)
            out.write(data)
            written += len(data)
            if progress is not None:
                progress(written)
    except grpc.aio.AioRpcError as err:
        raise Unavailable(f"{target}: the backup stream broke ({router.failure(err)})") from None
    return reader.finish()
