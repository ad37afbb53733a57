"""Running a command's coroutine so that Ctrl-C always ends it.

``asyncio.run`` turns the first SIGINT into a cancellation of the main task,
and a cancellation can be swallowed on its way up: gRPC reports a call
cancelled mid-read as an ``AioRpcError(CANCELLED)``, which a retrying loop
(``nexusctl watch``) takes for a broken stream and retries, so the program
went on after Ctrl-C. Here SIGINT cancels the command again every
``interval`` until it has ended, and the command then counts as interrupted
whatever it returned: the caller gets ``KeyboardInterrupt`` (exit 130, one
line, in ``run_app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_interruptible"]

_T = TypeVar("_T")


def run_interruptible(make: Callable[[], Awaitable[_T]], *, interval: float = 0.05) -> _T:
    """Run ``make()`` on a fresh event loop; SIGINT ends it for sure (``KeyboardInterrupt``)."""
    interrupted = False

    async def main() -> _T:
        nonlocal interrupted
        loop = asyncio.get_running_loop()
        inner = loop.create_task(_await(make()))

        def keep_cancelling() -> None:
            if not inner.done():
                inner.cancel()
                loop.call_later(interval, keep_cancelling)

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            keep_cancelling()

        handled = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)  # main thread only
            handled = True
        try:
            return await inner
        except asyncio.CancelledError:
            if not interrupted:
                raise
            raise KeyboardInterrupt from None
        finally:
            if handled:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signal.SIGINT)

    result = asyncio.run(main())
    if interrupted:
        raise KeyboardInterrupt
    return result


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable
