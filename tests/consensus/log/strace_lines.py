"""Reading ``strace -f`` lines about LevelDB's log files (shared by the fsync tests)."""

from __future__ import annotations

import re

__all__ = ["CALL", "RESULT", "LOG_FILE", "opened_log"]

CALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
RESULT = re.compile(r"=\s+(-?\d+)")
LOG_FILE = re.compile(r'"([^"]*/\d+\.log)"')


def opened_log(
    pid: str, call: str | None, rest: str, pending: dict[str, str]
) -> tuple[int, str] | None:
    """(fd, path) when an ``openat`` line finishes opening a LevelDB log file, else None.

    An ``openat`` cut by another thread's line ("<unfinished ...>") is kept in
    ``pending`` under its pid until its "resumed" line brings the result.
    """
    if call is not None:
        path = LOG_FILE.search(rest)
        if path is None:
            return None
        if "<unfinished" in rest:
            pending[pid] = path.group(1)
            return None
        target = path.group(1)
    else:
        target = pending.pop(pid, "")
        if not target:
            return None
    res = RESULT.search(rest)
    if res is None or int(res.group(1)) < 0:
        return None
    return int(res.group(1)), target
