"""Every Raft batch is durable when ``LogStore.save`` returns, also across LevelDB log rotations.

Pinned at the syscall level: a child process saves Readies large enough to
make LevelDB rotate its write-ahead log several times, on a store opened the
way a full member opens it (``sync=False``: the state machine's applies are
not synced), under ``strace -f``. Every LevelDB log file (``NNNNNN.log``) is
followed from its ``openat`` through its ``write``s, ``fdatasync``/``fsync``s
and ``close``: when a save returns (the child marks it on stderr), no log
file may hold a write that was not synced after it, and no log file may be
closed with one.

The old way, the batch unsynced and then a small synced marker, fails this
exactly when the marker's write finds the memtable full: LevelDB switches to
a new log, closes the old one (which holds the batch) without an fsync, and
syncs only the new one. A power cut before the background flush then loses
acknowledged entries, a vote or a term while the marker survives. The second
half of the test replays that pattern and checks that the tracer sees it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.consensus.log.strace_lines import CALL as _CALL
from tests.consensus.log.strace_lines import opened_log

STRACE = shutil.which("strace")

pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed")

CHILD = r"""
import sys
from nexus_raft.consensus.core.messages import ConfState, Entry, EntryType, HardState
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.storage import Batch, Store

path, mode = sys.argv[1], sys.argv[2]
store = Store.open(path, sync=False)  # as a full member opens its store
log = LogStore(store, conf_state=ConfState(voters=frozenset({1})))
payload = b"x" * (64 << 10)
index = 0
for n in range(24):  # 24 Readies of 1 MiB: LevelDB's 4 MiB memtable rotates ~5 times
    entries = [Entry(index + i + 1, 1, EntryType.NORMAL, payload) for i in range(16)]
    index += 16
    if mode == "save":
        log.save(HardState(1, 1, index - 16), entries, None)
    else:  # the old way: the batch unsynced, then a synced marker
        batch = Batch()
        for e in entries:
            batch.insert(e.index.to_bytes(8, "big"), e.data, tree="raft.log")
        store.apply_batch(batch)
        marker = Batch()
        marker.insert(b"marker", b"")
        store.apply_batch(marker, sync=True)
    sys.stderr.write(f"SAVED {n}\n")
    sys.stderr.flush()
store.close()
"""

_FD = re.compile(r"^\s*(\d+)")


@dataclass
class Trace:
    """What the tracer saw: LevelDB log files, saves, and unsynced data at each point."""

    rotations: int = 0
    saves: int = 0
    unsynced_at_save: list[str] = field(default_factory=list)
    closed_unsynced: list[str] = field(default_factory=list)


def follow(lines: list[str]) -> Trace:
    """Replay an ``strace -f`` log (see the module docstring for the rules)."""
    out = Trace()
    open_fds: dict[int, str] = {}  # fd -> log file path
    dirty: set[str] = set()  # log files with a write not synced since
    pending_open: dict[str, str] = {}  # pid -> log path of an unfinished openat
    for line in lines:
        m = _CALL.match(line)
        if m is None:
            continue
        pid, resumed, call, rest = m.group(1), m.group(2), m.group(3), m.group(4)
        name = resumed or call
        if name == "openat":
            opened = opened_log(pid, call, rest, pending_open)
            if opened is not None:
                open_fds[opened[0]] = opened[1]
                out.rotations += 1
            continue
        if call is None:
            continue  # the rest of an unfinished write/sync/close: its fd was on the first line
        fd_match = _FD.match(rest)
        if fd_match is None:
            continue
        fd = int(fd_match.group(1))
        if name in ("write", "writev", "pwrite64") and fd == 2 and "SAVED" in rest:
            out.saves += 1
            out.unsynced_at_save.extend(sorted(dirty))
            continue
        target = open_fds.get(fd)
        if target is None:
            continue
        if name in ("write", "writev", "pwrite64"):
            dirty.add(target)
        elif name in ("fdatasync", "fsync"):
            dirty.discard(target)
        elif name == "close":
            if target in dirty:
                out.closed_unsynced.append(target)
                dirty.discard(target)
            del open_fds[fd]
    return out


def trace_child(tmp_path: Path, mode: str) -> Trace:
    probe = subprocess.run([STRACE or "strace", "-f", "-o", "/dev/null", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace')[:200]}")
    out = tmp_path / f"trace-{mode}.txt"
    root = Path(__file__).resolve().parents[3]
    subprocess.run(
        [STRACE or "strace", "-f", "-s", "16", "-o", str(out),
         "-e", "trace=openat,write,writev,pwrite64,fdatasync,fsync,close",
         sys.executable, "-c", CHILD, str(tmp_path / f"store-{mode}"), mode],
        cwd=root, check=True, capture_output=True, timeout=300,
    )
    return follow(out.read_text().splitlines())


def test_raft_batches_are_synced_before_save_returns_across_log_rotations(
    tmp_path: Path,
) -> None:
    t = trace_child(tmp_path, "save")
    assert t.saves == 24
    assert t.rotations >= 3, f"LevelDB's log rotated only {t.rotations - 1} times"
    assert not t.closed_unsynced, f"log files closed holding unsynced data: {t.closed_unsynced}"
    assert not t.unsynced_at_save, f"saves returned with unsynced log data: {t.unsynced_at_save}"
    # The tracer sees the old pattern's gap (this is what the test guards against).
    old = trace_child(tmp_path, "marker")
    assert old.saves == 24 and old.rotations >= 3
    assert old.closed_unsynced, "the unsynced batch + synced marker pattern went unnoticed"
