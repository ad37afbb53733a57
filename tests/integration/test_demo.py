"""``make demo`` end to end: the cluster demo runs, reports, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from .harness import REPO_ROOT

pytestmark = pytest.mark.process


def test_cluster_demo_runs_and_cleans_up() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "nexus_raft.demo", "--keys", "100"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for step in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):
        assert step in out
    assert out.count("watch: rev ") == 3
    assert re.search(r"kill -9 leader -> next committed write\s+\d+ ms", out)
    assert "witness" in out
    # The operator's view: endpoint status of every member and a metrics excerpt.
    assert "endpoint status" in out and re.search(r"ENDPOINT\s+ID\s+STATE", out)
    assert "nexus_server_has_leader 1.0" in out
    # Every member's port is free again: no process was left running.
    for port in re.findall(r"127\.0\.0\.1:(\d+)", out):
        with socket.socket() as s:
            # SO_REUSEADDR: connections in TIME_WAIT are fine, a listener is not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(port)))
            s.listen()
    workdir = re.search(r"data and logs under (\S+)", out)
    assert workdir is not None and not os.path.exists(workdir.group(1))
