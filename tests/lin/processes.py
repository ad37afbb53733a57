"""Real ``nexus-node`` processes for the linearizability test: start, kill -9, pause, clean up.

:class:`NodeCluster` owns three member processes on loopback ports and their
data directories. :meth:`NodeCluster.close` always leaves no process behind:
paused members are resumed (a stopped process ignores SIGTERM until
continued), then every member is terminated and, if it lingers, killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["NodeCluster"]


def _free_ports(n: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class NodeCluster:
    """Three ``python -m nexus_raft.cli.node`` members under ``root``."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.ports = _free_ports(size)
        self.endpoints = [f"127.0.0.1:{p}" for p in self.ports]
        self._peers = ",".join(f"{i + 1}={e}" for i, e in enumerate(self.endpoints))
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.paused: set[int] = set()

    def _argv(self, i: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "nexus_raft.cli.node",
            "--id",
            str(i + 1),
            "--listen",
            self.endpoints[i],
            "--peers",
            self._peers,
            "--data-dir",
            str(self.root / f"n{i + 1}"),
            "--log-level",
            "info",
        ]

    def start(self, i: int) -> None:
        """Spawn member ``i`` (0-based); its output goes to ``root/n{i+1}.log``."""
        if self.alive(i):
            raise RuntimeError(f"member {i + 1} is already running")
        with open(self.root / f"n{i + 1}.log", "ab") as log:
            self.procs[i] = subprocess.Popen(
                self._argv(i),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=Path(__file__).resolve().parents[2],
            )

    def start_all(self) -> None:
        """Spawn every member."""
        for i in range(len(self.procs)):
            self.start(i)

    def alive(self, i: int) -> bool:
        """True while member ``i``'s process exists (running or paused)."""
        p = self.procs[i]
        return p is not None and p.poll() is None

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` and reap it."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        self.paused.discard(i)

    def pause(self, i: int) -> None:
        """SIGSTOP member ``i`` (it keeps its sockets but answers nothing)."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGSTOP)
            self.paused.add(i)

    def resume(self, i: int) -> None:
        """SIGCONT member ``i``."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
        self.paused.discard(i)

    def log_tail(self, i: int, lines: int = 20) -> str:
        """The end of member ``i``'s log, for failure messages."""
        path = self.root / f"n{i + 1}.log"
        with contextlib.suppress(OSError):
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def close(self) -> None:
        """Resume, terminate and reap every member; kill stragglers after a grace period."""
        for i in list(self.paused):
            self.resume(i)
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
