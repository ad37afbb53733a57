"""Ctrl-C ends a nexusctl command even when the command swallows the first cancellation.

Found in a fresh-clone CI run: ``nexusctl watch`` got SIGINT while reading its
stream, gRPC reported the read as CANCELLED, the watch took that for a broken
stream and retried, and the process never exited
(tests/integration/test_cli_live.py waited 20 s for exit 130). Here a real
SIGINT hits a real process whose command swallows the first cancellation.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from nexus_raft.cli.interrupt import run_interruptible

    async def stubborn():
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("swallowed", flush=True)  # what a CANCELLED read + a retry does
        await asyncio.sleep(3600)

    try:
        run_interruptible(stubborn)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


def test_ctrl_c_ends_a_command_that_swallows_the_first_cancellation() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,  # before the fix: hangs for an hour
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert done.stdout.split() == ["swallowed", "interrupted"]
