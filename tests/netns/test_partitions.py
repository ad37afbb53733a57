"""Real network partitions: nexus-node processes in network namespaces, packets really dropped.

Three members and the clients each live in their own network namespace on
one bridge (tests/netns/lab.py); faults are ``tc`` blackholes on the
interfaces, so a cut member's packets vanish silently, as behind a failed
switch port. Clients run in their own namespace (tests/netns/workload.py);
every call is recorded and the whole history is checked with the project's
linearizability checker (tests/lin). Three scenes:

- the leader is isolated: the majority elects a new leader and keeps
  serving; after the heal the old leader rejoins;
- a bridge partition: the leader and one follower cannot talk, the third
  member talks to both (pre-vote and check-quorum must keep the cluster
  writable, with no leader flapping);
- random cuts (isolations, bridge partitions, one-way cuts, heals) while
  four clients run.

Skipped, with a one-line reason, where namespaces cannot be created (not
root, no iproute2). Namespaces are uniquely named and always removed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import wait_until
from tests.lin.checker import Verdict, check_history
from tests.lin.history import History
from tests.netns.lab import Lab, available

pytestmark = [pytest.mark.process, pytest.mark.slow]

PORT = 7001
ROOT = Path(__file__).resolve().parents[2]


class NetCluster:
    """Three ``nexus-node`` members, one per namespace of ``lab``."""

    def __init__(self, lab: Lab, root: Path) -> None:
        self.lab = lab
        self.root = root
        self.endpoints = [f"{lab.ip(i)}:{PORT}" for i in range(lab.members)]
        self.peers = ",".join(f"{i + 1}={e}" for i, e in enumerate(self.endpoints))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for i in range(self.lab.members):
            argv = [sys.executable, "-m", "nexus_raft.cli.node", "--id", str(i + 1),
                    "--listen", self.endpoints[i], "--peers", self.peers,
                    "--data-dir", str(self.root / f"n{i + 1}"), "--log-level", "info"]
            with open(self.root / f"n{i + 1}.log", "ab") as log:
                self.procs.append(subprocess.Popen(
                    self.lab.exec_argv(self.lab.ns[i], argv), stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                    start_new_session=True))

    def client(self, *args: str) -> list[str]:
        """A workload command run in the client namespace."""
        return self.lab.exec_argv(
            self.lab.client_ns,
            [sys.executable, "-m", "tests.netns.workload", *args,
             "--endpoints", ",".join(self.endpoints)])

    def status(self) -> dict[str, list[int] | None]:
        out = subprocess.run(self.client("status"), capture_output=True, text=True,
                             cwd=ROOT, timeout=60, check=True)
        got: dict[str, list[int] | None] = json.loads(out.stdout.strip().splitlines()[-1])
        return got

    def leader(self, among: list[int] | None = None) -> int | None:
        """0-based index of a member that says it leads (and is among ``among``)."""
        for ep, st in self.status().items():
            i = self.endpoints.index(ep)
            if st is not None and st[0] == st[1] and (among is None or i in among):
                return i
        return None

    def wait_leader(self, timeout: float, among: list[int] | None = None,
                    not_: int | None = None) -> int:
        def found() -> int | None:
            got = self.leader(among)
            return got + 1 if got is not None and got != not_ else None  # 0 is a member

        try:
            return wait_until(f"a leader among {among}", found, timeout, interval=0.5) - 1
        except AssertionError:
            detail = f"no leader among {among} within {timeout}s\n{self.logs()}"
            raise AssertionError(detail) from None

    def logs(self, lines: int = 15) -> str:
        out = []
        for i in range(self.lab.members):
            path = self.root / f"n{i + 1}.log"
            tail = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            out.append(f"--- n{i + 1}\n" + "\n".join(tail))
        return "\n".join(out)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NetCluster]:
    why = available()
    if why is not None:
        pytest.skip(f"real-network partition tests need network namespaces: {why}")
    lab = Lab(3)
    nodes = NetCluster(lab, tmp_path)
    try:
        lab.setup()
        nodes.start()
        nodes.wait_leader(60)
        yield nodes
    finally:
        nodes.close()
        lab.close()


def _start_workload(nodes: NetCluster, seconds: float, clients: int, seed: int,
                    out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        nodes.client("run", "--seconds", str(seconds), "--clients", str(clients),
                     "--seed", str(seed), "--out", str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _hold(proc: subprocess.Popen[str], seconds: float) -> None:
    """Keep the network as it is for ``seconds`` while the workload runs.

    Waits on the workload process with that deadline: a workload that ends
    early (it crashed) fails the test at once instead of after the scenario.
    """
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"the workload ended early (status {proc.returncode})")


def _finish(nodes: NetCluster, proc: subprocess.Popen[str], out: Path) -> dict:  # type: ignore[type-arg]
    """Wait for the workload, check its history; returns its summary."""
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"workload did not finish:\n{stderr[-2000:]}") from None
    assert proc.returncode == 0, f"workload failed:\n{stderr[-3000:]}\n{nodes.logs()}"
    summary: dict = json.loads(stdout.strip().splitlines()[-1])  # type: ignore[type-arg]
    ops = History.load(out)
    result = check_history(ops, timeout=120)
    if result.verdict is not Verdict.LINEARIZABLE:
        pytest.fail(f"{len(ops)} ops, {summary['answered']}: {result.verdict.value}\n"
                    f"{result.explain()}")
    assert all(a > 0 for a in summary["answered"]), summary["answered"]
    return summary


def _completed_between(summary: dict, t0: float, t1: float) -> int:  # type: ignore[type-arg]
    return sum(1 for t in summary["completions"] if t0 <= t <= t1)


def test_isolated_leader_is_replaced_and_rejoins(cluster: NetCluster, tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    proc = _start_workload(cluster, 18, 3, 1, out)
    _hold(proc, 3)
    old = cluster.wait_leader(30)
    cluster.lab.isolate(old)
    cut_at = time.time()
    others = [i for i in range(3) if i != old]
    new = cluster.wait_leader(30, among=others)
    elected_at = time.time()
    _hold(proc, 4)
    healed_at = time.time()
    cluster.lab.heal()
    summary = _finish(cluster, proc, out)
    assert new != old
    # The majority kept serving while the old leader was cut off.
    assert _completed_between(summary, elected_at, healed_at) > 0, summary["answered"]
    assert elected_at - cut_at < 30
    # The old leader rejoined as a follower of the new term.
    st = cluster.status()[cluster.endpoints[old]]
    assert st is not None and st[1] != 0, f"n{old + 1} has no leader after the heal: {st}"


def test_bridge_partition_keeps_the_cluster_writable(
    cluster: NetCluster, tmp_path: Path
) -> None:
    out = tmp_path / "history.jsonl"
    proc = _start_workload(cluster, 16, 3, 2, out)
    _hold(proc, 3)
    leader = cluster.wait_leader(30)
    a = (leader + 1) % 3  # cut off from the leader; the third member bridges them
    cluster.lab.split(leader, a)
    t0 = time.time()
    _hold(proc, 8)
    t1 = time.time()
    during = cluster.leader()
    cluster.lab.heal()
    summary = _finish(cluster, proc, out)
    assert during is not None, "no leader during the bridge partition"
    assert _completed_between(summary, t0 + 2, t1) > 0, "no write completed during it"


def test_random_cuts_with_concurrent_clients(cluster: NetCluster, tmp_path: Path) -> None:
    rng = random.Random(3)
    out = tmp_path / "history.jsonl"
    run_for = 24.0
    proc = _start_workload(cluster, run_for, 4, 3, out)
    lab = cluster.lab
    faults: list[str] = []
    stop = time.monotonic() + run_for - 6  # the last seconds stay healed
    _hold(proc, 2)
    kinds = ["isolate", "bridge", "one-way", "heal"]
    rng.shuffle(kinds)  # a rotation: every kind of fault happens in every run
    n = 0
    while time.monotonic() < stop:
        lab.heal()
        kind = kinds[n % len(kinds)]
        n += 1
        a, b = rng.sample(range(3), 2)
        if kind == "isolate":
            lab.isolate(a)
        elif kind == "bridge":
            lab.split(a, b)
        elif kind == "one-way":
            lab.cut(a, b)
        faults.append(f"{kind}: {lab.describe()}")
        _hold(proc, rng.uniform(1.0, 2.5))
    lab.heal()
    _finish(cluster, proc, out)
    assert {f.split(":")[0] for f in faults} >= {"isolate", "bridge", "one-way"}, faults
