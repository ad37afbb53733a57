"""The command-line programs as users run them: nexus-node and nexusctl.

Bad arguments exit non-zero with exactly one line on stderr and no
traceback; nexusctl works against a real cluster in human and JSON modes;
nexus-node stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import REPO_ROOT, ProcessCluster, free_ports, wait_until

pytestmark = pytest.mark.process


def run(module: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_flags_exit_non_zero_with_one_line() -> None:
    # The full matrix runs in-process in tests/cli; here the real programs.
    node = run("nexus_raft.cli.node", "--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=x")
    assert_one_line_failure(node, "nexus-node: error:", "--data-dir")
    ctl = run("nexus_raft.cli.ctl", "--endpoints", "127.0.0.1:1", "frobnicate")
    assert ctl.returncode == 2
    assert_one_line_failure(ctl, "nexusctl: error:", "frobnicate")


def test_nexusctl_unreachable_cluster_fails_with_one_line() -> None:
    (port,) = free_ports(1)
    endpoint = f"127.0.0.1:{port}"
    result = run("nexus_raft.cli.ctl", "--endpoints", endpoint, "--timeout", "1", "get", "k")
    assert result.returncode == 1
    assert_one_line_failure(result, "unreachable", endpoint)


def test_nexusctl_against_a_cluster(cluster: ProcessCluster) -> None:
    # A generous deadline: on a loaded machine an election may happen mid-test.
    ep = ["--endpoints", ",".join(cluster.endpoints()), "--timeout", "20"]
    ctl = "nexus_raft.cli.ctl"
    put = run(ctl, *ep, "put", "cli/users/alice", "hello")
    assert put.returncode == 0 and put.stdout.startswith("OK revision "), put
    assert run(ctl, *ep, "get", "cli/users/alice").stdout == "hello\n"
    got = json.loads(run(ctl, *ep, "--json", "get", "cli/users/alice").stdout)
    assert got["value"] == "hello" and got["found"] is True
    missing = run(ctl, *ep, "get", "cli/nope")
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert run(ctl, *ep, "cas", "cli/users/bob", "--absent", "--new", "b").returncode == 0
    failed = run(ctl, *ep, "cas", "cli/users/bob", "--absent", "--new", "c")
    assert failed.returncode == 1 and "failed" in failed.stderr
    assert run(ctl, *ep, "list", "cli/").stdout.split() == ["cli/users/alice", "cli/users/bob"]
    assert run(ctl, *ep, "prefixes", "cli/").stdout.split() == ["cli/users/"]
    first = int(put.stdout.split()[-1])
    watched = run(
        ctl, *ep, "--json", "watch", "cli/", "--from-revision", str(first), "--count", "2"
    )
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [(e["key"], e["value"]) for e in events] == [
        ("cli/users/alice", "hello"),
        ("cli/users/bob", "b"),
    ]
    assert run(ctl, *ep, "delete", "cli/users/bob").stdout == "deleted\n"
    status = json.loads(run(ctl, *ep, "--json", "status").stdout)
    assert status["leader_id"] in cluster.initial and len(status["members"]) == 3
    human = run(ctl, *ep, "status").stdout
    assert "leader" in human and "ADDRESS" in human
    members = json.loads(run(ctl, *ep, "--json", "members").stdout)
    assert sorted(m["id"] for m in members) == cluster.initial
    snap = json.loads(run(ctl, *ep, "--json", "snapshot").stdout)
    assert snap["index"] > 0


def test_thin_executables_run() -> None:
    for name in ("nexus-node", "nexusctl"):
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "bin" / name), "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0 and "Usage" in result.stdout, result


def test_nexus_node_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, 1) as cluster:
        cluster.start()
        cluster.wait_for_leader()
        client = cluster.client()
        client.put("k", b"v")
        client.close()
        assert cluster.members[1].terminate() == 0
        assert "stopped" in cluster.members[1].log_tail()
        # The data survived the clean stop.
        cluster.start()
        wait_until(
            "the restarted member to lead", lambda: cluster.status_of(1).role == "leader", 15
        )
        assert cluster.client().get("k") == b"v"
