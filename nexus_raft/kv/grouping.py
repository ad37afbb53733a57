"""What lets a RaftNode put several KV commands in one log entry (``GroupsCommands``).

The group layout and its apply rules are in :mod:`nexus_raft.kv.commands`
and :mod:`nexus_raft.kv.apply`; this mixin only exposes them to the node.
"""

from __future__ import annotations

from collections.abc import Sequence

from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.commands import encode_group, split_group_result

__all__ = ["CommandGrouping"]


class CommandGrouping:
    """``group_commands`` / ``split_group_result`` of the KV state machine."""

    def group_commands(self, commands: Sequence[bytes]) -> bytes:
        """One command group carrying ``commands`` (see ``kv.commands``)."""
        return encode_group(list(commands))

    def split_group_result(self, result: bytes, count: int) -> list[bytes]:
        """The ``count`` results of a group's result; ``ValueError`` if it is not one."""
        try:
            parts = split_group_result(result)
        except InvalidCommand as exc:
            raise ValueError(str(exc)) from None
        if len(parts) != count:
            raise ValueError(f"a group of {count} commands answered {len(parts)} results")
        return parts
