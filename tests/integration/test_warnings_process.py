"""The operator's warnings (issue #12), raised by real ``nexus-node`` processes.

A peer unreachable, a peer of another cluster (its address now serves
another cluster's member) and a slow fsync (a real process whose fdatasync
calls the kernel delays by 150 ms, injected with ``strace``): each must be
logged, in one line, by the member that sees it. Quorum lost is covered in
test_observe_process.py, the rules and rate limits in tests/consensus/node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .harness import Member, ProcessCluster, free_ports, wait_until
from .test_observe_process import http_get

pytestmark = pytest.mark.process

STRACE = shutil.which("strace")


def test_the_leader_warns_of_an_unreachable_peer_and_of_a_peer_of_another_cluster(
    make_cluster: Callable[..., ProcessCluster], tmp_path: Path
) -> None:
    """The member killed is the leader: its successor, which it led a moment
    ago, used to call it a peer that "never answered"."""
    cluster = make_cluster(3)
    first = cluster.wait_for_leader()
    cluster.client().put("k", b"v")
    gone = cluster.members[first]
    gone.kill()
    leader = cluster.members[cluster.wait_for_leader(not_id=first)]
    wait_until(
        "the new leader to warn that the old one is unreachable",
        lambda: f"peer {gone.id} at {gone.address} is unreachable (silent for"
        in leader.log_tail(200),
        30,
    )
    assert "never answered" not in leader.log_tail(200)
    # Another cluster's member (a one-member cluster) takes over the address.
    stranger = Member(gone.id, gone.address, tmp_path / "stranger", tmp_path / "stranger.log")
    try:
        stranger.start(["--id", str(gone.id), "--listen", gone.address,
                        "--peers", f"{gone.id}={gone.address}",
                        "--data-dir", str(stranger.data_dir)])  # fmt: skip
        wait_until(
            "the leader to warn that the address serves another cluster",
            lambda: f"peer {gone.id} at {gone.address} belongs to another cluster"
            in leader.log_tail(200),
            30,
        )
    finally:
        stranger.kill()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_a_slow_fsync_is_warned_and_counted(tmp_path: Path) -> None:
    probe = subprocess.run([STRACE or "strace", "-f", "-o", "/dev/null", "true"],
                           capture_output=True, timeout=30)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace')[:200]}")
    port, metrics_port = free_ports(2)
    address, metrics = f"127.0.0.1:{port}", f"127.0.0.1:{metrics_port}"
    delay = ["-e", "trace=fdatasync,fsync", "-e", "inject=fdatasync,fsync:delay_exit=150000"]
    member = Member(1, address, tmp_path / "node1", tmp_path / "node1.log",
                    prefix=[STRACE or "strace", "-f", "-o", "/dev/null", *delay])  # fmt: skip
    member.metrics_address = metrics
    cluster = ProcessCluster(tmp_path / "unused", 1)
    cluster.members[1] = member
    try:
        member.start(["--id", "1", "--listen", address, "--peers", f"1={address}",
                      "--data-dir", str(member.data_dir), "--metrics-listen", metrics])  # fmt: skip
        cluster.wait_for_leader(timeout=60)
        cluster.client().put("k", b"v")
        wait_until("a slow fsync warning", lambda: "slow fsync: saving" in member.log_tail(), 30)
        status, text = http_get(metrics, "/metrics")
        assert status == 200
        got = {s.name + str(sorted(s.labels.items())): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
        assert got["nexus_disk_wal_slow_fsyncs_total[]"] >= 1
        count = got["nexus_disk_wal_fsync_duration_seconds_count[]"]
        fast = got["nexus_disk_wal_fsync_duration_seconds_bucket[('le', '0.064')]"]
        assert count - fast >= 1  # the histogram saw saves over 64 ms (etcd's buckets)
    finally:
        if member.proc is not None:
            for child in _children(member.proc.pid):  # the node under strace
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        member.kill()
        cluster.close()
