"""Answers for commands at log indexes the state machine applied before.

After a restart the node may hand the state machine entries it already
applied (their writes are in the store). Re-applying them would break
exactly-once, so they are answered from the session table: a command whose
session's last write is this very (client_id, seq) gets that write's stored
result; anything else gets ``ALREADY_APPLIED``. A command group is answered
command by command, as a group result.
"""

from __future__ import annotations

from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.commands import (
    GROUP_MAGIC,
    KVCommand,
    KVResult,
    ResultCode,
    encode_group_result,
    split_group,
)
from nexus_raft.kv.sessions import SessionTable

__all__ = ["replayed_result"]


def replayed_result(sessions: SessionTable, command: bytes, revision: int) -> bytes:
    """The result for ``command`` at an index applied before (``revision``: the current one)."""
    if command[:1] == bytes((GROUP_MAGIC,)):
        try:
            parts = split_group(command)
        except InvalidCommand:
            parts = []
        return encode_group_result([_one(sessions, c, revision) for c in parts])
    return _one(sessions, command, revision)


def _one(sessions: SessionTable, command: bytes, revision: int) -> bytes:
    try:
        cmd = KVCommand.decode(command) if command else None
    except InvalidCommand:
        cmd = None
    if cmd is not None and cmd.client_id:
        session = sessions.get(cmd.client_id)
        if session is not None and session.seq == cmd.seq:
            return session.result
    return KVResult.failure(
        ResultCode.ALREADY_APPLIED, revision, "this log index was applied before"
    ).encode()
