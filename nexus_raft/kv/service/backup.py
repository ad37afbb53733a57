"""The ``Backup`` RPC: stream a consistent backup file of this member's state.

The node produces the file's bytes (``RaftNode.backup()``: one state-machine
snapshot with a header and a sha256 trailer); this handler forwards them in
messages of about 1 MiB. Any failure ends the stream with one ``error``
message; the client's reader also refuses a stream cut short (no trailer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from nexus_raft.kv.service.base import ServiceBase, log_failure
from nexus_raft.kv.wire import error_from_exception, kv_pb2

__all__ = ["BackupRPCs"]

_PIECE = 1 << 20


class BackupRPCs(ServiceBase):
    """The ``Backup`` handler (mixed into ``KVService``)."""

    async def Backup(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Stream this member's backup file; a witness answers an error (it holds no data)."""
        pending: list[bytes] = []
        size = 0
        try:
            self._check_cluster(request.cluster_id)
            backup = getattr(self._node, "backup", None)
            if backup is None:
                raise NotImplementedError("this node cannot make backups")
            async for piece in backup():
                pending.append(piece)
                size += len(piece)
                if size >= _PIECE:
                    yield kv_pb2.BackupChunk(data=b"".join(pending))
                    pending, size = [], 0
        except Exception as exc:
            log_failure(exc)
            yield kv_pb2.BackupChunk(error=error_from_exception(exc))
            return
        if pending:
            yield kv_pb2.BackupChunk(data=b"".join(pending))
