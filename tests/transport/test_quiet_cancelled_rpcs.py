"""gRPC's report of an RPC task cancelled at shutdown does not reach a member's log.

Seen in a fresh-clone CI run (tests/security/test_disk_full.py, follower): a
member stopping because its disk was full ended its log with gRPC's
"Exception not handled by _handle_exceptions in servicer method
[/nexus_raft.peer.RaftPeer/Stream]" and a CancelledError traceback after its
one-line reason. Importing the transport installs a filter on gRPC's logger
that drops records whose exception is a cancellation, and only those.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import nexus_raft.transport.server  # noqa: F401  (installs the filter)


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "grpc._cython.cygrpc", logging.ERROR, __file__, 1,
        "Exception not handled by _handle_exceptions in servicer method [%s]",
        ("/nexus_raft.peer.RaftPeer/Stream",), info,
    )  # fmt: skip


def test_cancelled_rpc_reports_are_dropped_and_other_errors_kept() -> None:
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    assert not grpc_log.filter(_record(asyncio.CancelledError()))
    assert grpc_log.filter(_record(RuntimeError("a real servicer failure")))
    plain = logging.LogRecord("grpc._cython.cygrpc", logging.ERROR, __file__, 1, "x", (), None)
    assert grpc_log.filter(plain)
