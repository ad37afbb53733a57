"""Stopping background tasks for sure.

``task.cancel()`` followed by ``await task`` is not enough to stop a task:
a cancellation can be swallowed on its way up (Python 3.11's
``asyncio.wait_for`` returns the inner result when the inner awaitable
finished in the same loop turn as the cancel; a library may turn
``CancelledError`` into its own error), and a retry loop around such a
call then carries on as if nothing happened, so a ``stop()`` waiting on it
hangs for as long as the loop retries (for ever, for a loop that retries
until the cluster has a leader).

Invariant of :func:`cancel_and_wait`: it returns only once ``task`` is done,
and it re-delivers the cancellation at every ``interval`` until then, so a
swallowed cancellation delays a stop by one interval, not indefinitely.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any], *, interval: float = 0.05) -> None:
    """Cancel ``task`` (again every ``interval`` s while it runs on) until it is done.

    Whatever the task ends with (its result, ``CancelledError`` or another
    exception) is consumed: the caller is stopping it, not using it.
    """
    while not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait({task}, timeout=interval)
    with contextlib.suppress(BaseException):
        task.result()
