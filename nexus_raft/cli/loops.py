"""The event loop a program runs on: asyncio's own, or uvloop where it is installed.

uvloop is an optional extra (``pip install 'nexus-raft[uvloop]'``). It is
chosen once, at start (``--event-loop``), and a node reports the loop it
runs on in its status (``event_loop``), so a measurement or a bug report
always says which one it was.

* ``asyncio``: the standard library's loop;
* ``uvloop``: uvloop, and a one-line error when it is not installed;
* ``auto``: uvloop when it can be imported, else asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOPS", "run_on", "uvloop_available"]

EVENT_LOOPS = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


def uvloop_available() -> bool:
    """Whether uvloop can be imported here."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run_on(choice: str, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the loop ``choice`` names (see the module docstring).

    Raises ``ValueError`` for an unknown choice and ``RuntimeError`` when
    ``uvloop`` is asked for and not installed (the coroutine is closed).
    """
    if choice not in EVENT_LOOPS:
        main.close()
        raise ValueError(f"event loop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    use_uvloop = choice == "uvloop" or (choice == "auto" and uvloop_available())
    if not use_uvloop:
        return asyncio.run(main)
    try:
        import uvloop
    except ImportError:
        main.close()
        raise RuntimeError(
            "--event-loop uvloop: uvloop is not installed (pip install 'nexus-raft[uvloop]')"
        ) from None
    runner_type = getattr(asyncio, "Runner", None)
    if runner_type is None:  # Python 3.10: no Runner(loop_factory=...)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return asyncio.run(main)
    with runner_type(loop_factory=uvloop.new_event_loop) as runner:
        result: T = runner.run(main)
        return result
