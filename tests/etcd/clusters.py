"""A nexus cluster and a reference etcd 3.4 cluster for the etcdctl tests, and etcdctl itself.

The reference is Debian's etcd-server (3.4), started by the test on free
loopback ports with its own temporary data directories; both clusters are
stopped by the fixtures whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import ProcessCluster, free_ports

ETCDCTL = shutil.which("etcdctl")
ETCD = shutil.which("etcd")


def need_etcd() -> None:
    """Skip (naming the package) when Debian's etcd packages are missing (.ci installs them)."""
    if ETCDCTL is None:
        pytest.skip("etcdctl is missing (Debian package etcd-client; see .ci/etcd-packages)")
    if ETCD is None:
        pytest.skip("etcd is missing (Debian package etcd-server; see .ci/etcd-packages)")


def etcdctl(endpoints: str, *args: str, input: str | None = None,
            timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run etcdctl (API v3) against ``endpoints``."""
    assert ETCDCTL is not None
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run(
        [ETCDCTL, f"--endpoints={endpoints}", "--dial-timeout=5s", "--command-timeout=15s",
         *args],
        input=input, capture_output=True, text=True, timeout=timeout, env=env,
    )


def leader_endpoint(endpoints: list[str], timeout: float = 30.0) -> str:
    """The endpoint whose member says it is the leader (from ``endpoint status``)."""
    deadline = time.monotonic() + timeout
    while True:
        out = etcdctl(",".join(endpoints), "endpoint", "status", "-w", "json")
        if out.returncode == 0:
            rows = json.loads(out.stdout)
            for row in rows:
                st = row["Status"]
                if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                    return str(row["Endpoint"])
        if time.monotonic() > deadline:
            raise AssertionError(f"no leader among {endpoints}: {out.stderr}")
        time.sleep(0.2)


class EtcdCluster:
    """``size`` etcd 3.4 members on loopback (reference for output comparisons)."""

    def __init__(self, base: Path, size: int = 3) -> None:
        ports = free_ports(2 * size)
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.clients = [f"127.0.0.1:{p}" for p in ports[:size]]
        self.peers = [f"127.0.0.1:{p}" for p in ports[size:]]
        self.names = [f"ref{i + 1}" for i in range(size)]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        assert ETCD is not None
        initial = ",".join(f"{n}=http://{p}" for n, p in zip(self.names, self.peers, strict=True))
        for name, client, peer in zip(self.names, self.clients, self.peers, strict=True):
            log = (self.base / f"{name}.log").open("wb")
            self.procs.append(subprocess.Popen(
                [ETCD, "--name", name, "--data-dir", str(self.base / name),
                 "--listen-client-urls", f"http://{client}",
                 "--advertise-client-urls", f"http://{client}",
                 "--listen-peer-urls", f"http://{peer}",
                 "--initial-advertise-peer-urls", f"http://{peer}",
                 "--initial-cluster", initial, "--initial-cluster-state", "new",
                 "--initial-cluster-token", f"ref-{os.getpid()}"],
                stdout=log, stderr=subprocess.STDOUT,
            ))
        leader_endpoint(self.clients)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def nexus_cluster(base: Path, **options: Any) -> ProcessCluster:
    cluster = ProcessCluster(base, **options)
    cluster.start()
    cluster.wait_for_leader(timeout=30)
    return cluster
