"""Command-line behaviour that needs a running ``nexus-node`` (issue #12).

``nexusctl watch`` keeps retrying while no member serves it and resumes
where it stopped, until interrupted; ``nexus-node -w json`` logs JSON lines;
``nexus-store`` reads the store of a member that is running (from a copy)
and refuses to write to it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from nexus_raft.cli.store import main as store_main
from nexus_raft.kv.client.sync import SyncClient

from .harness import REPO_ROOT, ProcessCluster, free_ports, wait_until

pytestmark = pytest.mark.process


class Lines:
    """The lines a child writes to one stream, read by a thread (no blocking reads in the test)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self._queue.put(raw.decode(errors="replace").rstrip("\n"))

    def next(self, what: str, timeout: float = 30.0) -> str:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout}s; so far: {self.seen}") from None
        self.seen.append(line)
        return line

    def rest(self) -> list[str]:
        """Every line not read yet, once the child closed the stream."""
        self._thread.join(timeout=10)
        out: list[str] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def until(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(repr(needle), max(0.1, deadline - time.monotonic()))
            if needle in line:
                return line


def _spawn(module: str, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )


def _single_member(
    tmp_path: Path, *flags: str
) -> tuple[str, Path, subprocess.Popen[bytes]]:
    """Start a one-member cluster (``flags`` first); returns (address, data dir, process)."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    data = tmp_path / "m1"
    node = _spawn("nexus_raft.cli.node", *flags, "--id", "1", "--listen", address,
                  "--peers", f"1={address}", "--data-dir", str(data))  # fmt: skip
    return address, data, node


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.slow
def test_nexusctl_watch_retries_while_no_member_serves_until_interrupted(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    client = cluster.client(timeout=20.0)
    first = client.put("w/1", b"one")
    watch = _spawn("nexus_raft.cli.ctl", "--endpoints", ",".join(cluster.endpoints()),
                   "--timeout", "2", "watch", "w/", "--from-revision", str(first),
                   "--json")  # fmt: skip
    try:
        assert watch.stdout is not None and watch.stderr is not None
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        assert json.loads(out.next("the first event"))["key"] == "w/1"
        client.close()
        for member in cluster.members.values():
            member.kill()
        # No member for longer than --timeout: it says so and carries on.
        line = err.until("still retrying")
        assert line.startswith("nexusctl: watch: ") and "Traceback" not in line, line
        err.until("still retrying")  # and again: it did not give up
        assert watch.poll() is None
        cluster.start()
        cluster.wait_for_leader()
        with cluster.client(timeout=20.0) as again:
            again.put("w/2", b"two")
        event = json.loads(out.next("the event written after the restart", 60))
        assert (event["key"], event["value"]) == ("w/2", "two")  # w/1 is not repeated
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=20) == 130
        assert err.until("interrupted", 10) == "nexusctl: interrupted"
    finally:
        _stop(watch)


def test_nexus_node_logs_json_and_nexus_store_reads_its_live_store(tmp_path: Path) -> None:
    address, data, node = _single_member(tmp_path, "-w", "json")
    try:
        assert node.stderr is not None
        log = Lines(node.stderr)
        # -w json before the options: every log line is one JSON object.
        first = json.loads(log.next("a log line", 60))
        assert {"time", "level", "logger", "message"} <= set(first), first
        with _leader_client(address) as client:
            client.put("live/k", b"served")
        # The member holds its store: nexus-store reads a copy, never the live files.
        store = str(data / "store")
        trees = subprocess.run(
            [sys.executable, "-m", "nexus_raft.cli.store", "-w", "json", store, "trees"],
            capture_output=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
            cwd=REPO_ROOT, check=False,
        )  # fmt: skip
        assert trees.returncode == 0, trees.stderr
        assert "reading a copy" in trees.stderr.decode()
        assert isinstance(json.loads(trees.stdout), list)
        assert store_main([store, "set", "x", "y"]) == 1  # read-only while held
        # The member is unharmed and still serves.
        with _leader_client(address) as client:
            assert client.get("live/k") == b"served"
            assert client.get("x") is None
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=20) == 0
        rest = log.rest()
        assert rest and all(json.loads(line)["message"] for line in rest), rest
    finally:
        _stop(node)


def _leader_client(address: str) -> SyncClient:
    """A client of the one-member cluster at ``address``, once it leads."""
    client = SyncClient([address], timeout=30.0)
    wait_until("the member to lead", lambda: client.status().leader_id == 1, 30)
    return client


def test_nexusctl_watch_given_one_member_moves_to_the_others_when_it_dies(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    client = cluster.client(timeout=20.0)
    leader = cluster.wait_for_leader()
    # Watch through one follower only: the others are learned from the membership.
    watched = next(i for i in cluster.members if i != leader)
    first = client.put("w/1", b"one")
    watch = _spawn("nexus_raft.cli.ctl", "--endpoints", cluster.members[watched].address,
                   "--timeout", "2", "--log-level", "info", "watch", "w/", "--from-revision",
                   str(first), "--json")  # fmt: skip
    try:
        assert watch.stdout is not None and watch.stderr is not None
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        assert json.loads(out.next("the first event"))["key"] == "w/1"
        # The client asked the membership for the other members' addresses.
        assert "learned 3 members" in err.until("endpoint auto-sync", 60)
        cluster.members[watched].kill()
        client.put("w/2", b"two")  # the two other members are up and serve it
        event = json.loads(out.next("the event written while its member is down", 30))
        assert (event["key"], event["value"]) == ("w/2", "two")
        assert watch.poll() is None
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=20) == 130
        assert not [line for line in err.rest() if "Traceback" in line]
    finally:
        _stop(watch)


def test_nexus_store_stats_of_a_running_members_data_directory(tmp_path: Path) -> None:
    address, data, node = _single_member(tmp_path)
    try:
        with _leader_client(address) as client:
            client.put("live/k", b"served")
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        # The member's --data-dir (its store is data/store) and the store itself.
        for path in (data, data / "store"):
            for extra in ((), ("--json",)):
                stats = subprocess.run(
                    [sys.executable, "-m", "nexus_raft.cli.store", str(path), "stats", *extra],
                    capture_output=True, timeout=60, env=env, cwd=REPO_ROOT, check=False,
                )  # fmt: skip
                err = stats.stderr.decode()
                assert stats.returncode == 0 and "Traceback" not in err, err
                assert err.splitlines() == ["nexus-store: store in use; reading a copy taken now"]
                if extra:
                    report = json.loads(stats.stdout)
                    assert report["path"] == str(path) and report["disk_bytes"] > 0
                    assert report["trees"]["kv.data"]["keys"] >= 1, report
                else:
                    assert f"path: {path}" in stats.stdout.decode()
        with _leader_client(address) as client:
            assert client.get("live/k") == b"served"
    finally:
        _stop(node)
