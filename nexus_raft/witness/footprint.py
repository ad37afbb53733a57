"""What a witness costs its host: bytes on disk and resident memory.

Both are measured, not estimated: :func:`disk_bytes` sums the sizes of the
files under the data directory (LevelDB's tables, its write-ahead log and
manifest included), :func:`rss_bytes` reads the kernel's resident set size of
a process from ``/proc``. They feed :class:`~nexus_raft.witness.status.WitnessStatus`,
the ``nexus-witness`` status lines and ``bench/witness.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["disk_bytes", "rss_bytes"]


def disk_bytes(path: str | Path) -> int:
    """Total size in bytes of the regular files under ``path`` (0 if it does not exist).

    Files that vanish during the walk (LevelDB deletes obsolete tables and
    logs while it compacts) are skipped rather than failing the measurement.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, not {type(path).__name__}")
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            total += st.st_size
    return total


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of process ``pid`` (this process by default), or None if unknown.

    Reads ``VmRSS`` from ``/proc/<pid>/status`` (Linux); None where there is
    no ``/proc`` or the process is gone.
    """
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
        raise TypeError(f"pid must be an int or None, not {type(pid).__name__}")
    where = "self" if pid is None else str(pid)
    try:
        with open(f"/proc/{where}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    fields = line.split()
                    # "VmRSS:   123456 kB"
                    return int(fields[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
