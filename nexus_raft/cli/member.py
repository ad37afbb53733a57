"""Running a member program to its end: signals, self-halts and their exit statuses.

Shared by ``nexus-node`` and ``nexus-witness``. A member runs until SIGTERM
or SIGINT, or until it stops itself: removed from its cluster (exit 3,
``EXIT_REMOVED``), or started with a data directory or an initial
configuration that contradicts its cluster's (exit 2, as for a bad
argument). Either way one line on stderr says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nexus_raft.cli.common import EXIT_REMOVED, EXIT_USAGE, fail
from nexus_raft.errors import IdentityMismatch, MemberRemoved

__all__ = ["run_member", "until_stopped"]


def run_member(run: Callable[[], object]) -> None:
    """``run()`` the program; a removal or an identity conflict ends with its exit status."""
    try:
        run()
    except IdentityMismatch as exc:
        fail(str(exc), EXIT_USAGE)
    except MemberRemoved as exc:
        fail(str(exc), EXIT_REMOVED)


async def until_stopped(node: Any, stop: asyncio.Event) -> Any:
    """Wait for ``stop`` (a signal), or for ``node`` to halt itself (removed, misconfigured)
    or to fail (it cannot write its data); returns its ``Halt`` or None.
    """
    waiting = {asyncio.ensure_future(node.wait_halted()), asyncio.ensure_future(stop.wait())}
    if hasattr(node, "wait_failed"):  # see RaftNode.failure
        waiting.add(asyncio.ensure_future(node.wait_failed()))
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
    return node.halted
