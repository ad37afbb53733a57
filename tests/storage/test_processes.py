"""Real OS processes: kill -9 loses nothing acknowledged; the lock holds across processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.errors import StoreLockedError
from nexus_raft.storage import Store

pytestmark = pytest.mark.process

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

# Writes with sync=True and prints each key only after set() returned, so a
# printed line is an acknowledged write. Ids are printed the same way.
WRITER = """
import sys
from nexus_raft.storage import Store
store = Store.open(sys.argv[1], sync=True)
tree = store.tree("acked")
i = 0
while True:
    tree.set(b"k%08d" % i, b"v%d" % i)
    print("key", i, flush=True)
    print("id", store.generate_id(), flush=True)
    i += 1
"""

HOLDER = """
import sys
from nexus_raft.storage import Store
store = Store.open(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
store.close()
"""


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=DEADLINE)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def start(procs: list[subprocess.Popen[str]], code: str, path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    procs.append(proc)
    return proc


def read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line and time.monotonic() > deadline:
        raise AssertionError("child produced no output before the deadline")
    return line


def test_kill_9_loses_no_acknowledged_write(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "store"
    proc = start(spawn, WRITER, path)
    acked: list[int] = []
    ids: list[int] = []
    deadline = time.monotonic() + DEADLINE
    while len(acked) < 300:
        line = read_line(proc, deadline)
        assert line, f"writer exited early with {proc.poll()}"
        kind, number = line.split()
        (acked if kind == "key" else ids).append(int(number))
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.stdout is not None
    for line in proc.stdout:  # lines printed before the kill are acknowledged too
        if line.endswith("\n"):
            kind, number = line.split()
            (acked if kind == "key" else ids).append(int(number))
    assert proc.wait(timeout=DEADLINE) == -signal.SIGKILL
    with Store.open(path) as store:
        tree = store.tree("acked")
        for i in acked:
            assert tree.get(b"k%08d" % i) == b"v%d" % i, f"acknowledged key {i} lost"
        # Keys are written in order, so nothing beyond the last ack can precede it.
        assert tree.count() in (len(acked), len(acked) + 1)
        assert store.generate_id() > max(ids)


def test_lock_holds_across_processes(tmp_path: Path, spawn: list[subprocess.Popen[str]]) -> None:
    path = tmp_path / "store"
    holder = start(spawn, HOLDER, path)
    assert read_line(holder, time.monotonic() + DEADLINE) == "open\n"
    with pytest.raises(StoreLockedError):
        Store.open(path)
    assert holder.stdin is not None
    holder.stdin.close()  # lets the holder close the store and exit
    assert holder.wait(timeout=DEADLINE) == 0
    with Store.open(path) as store:
        assert store.tree_names() == ["default"]


def test_lock_released_when_holder_is_killed(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "store"
    holder = start(spawn, HOLDER, path)
    assert read_line(holder, time.monotonic() + DEADLINE) == "open\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=DEADLINE)
    with Store.open(path) as store:
        store.set(b"k", b"v")
