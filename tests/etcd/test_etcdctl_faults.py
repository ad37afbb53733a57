"""The real etcdctl against nexus clusters that lose members.

* A watch with history (``watch --prefix --rev``) keeps delivering live
  events, each exactly once and in order, after ``kill -9`` of the leader
  it is connected to (etcdctl reconnects to another member and resumes).
* A 2+1 cluster (two full members and a witness, which etcd cannot run):
  ``member list`` shows the witness as such, data requests sent to the
  witness are refused with a clear error, and writes go on with one full
  member down (the witness lends its vote and holds the payloads the
  missing member lacks until it is back).

Both clusters serve peers on ports of their own (``--peer-listen``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.etcd.clusters import ETCDCTL, etcdctl, leader_endpoint, need_etcd, nexus_cluster
from tests.integration.harness import ProcessCluster, wait_until

pytestmark = pytest.mark.process


def ok(endpoints: str, *args: str) -> str:
    out = etcdctl(endpoints, *args)
    assert out.returncode == 0, f"etcdctl {' '.join(args)}: {out.stderr}"
    return out.stdout


class Watcher:
    """``etcdctl watch`` in the background; its output lines, read as they come."""

    def __init__(self, endpoints: str, *args: str) -> None:
        assert ETCDCTL is not None
        self.proc = subprocess.Popen(
            [ETCDCTL, f"--endpoints={endpoints}", "--dial-timeout=5s", "watch", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )

    def lines(self, count: int, timeout: float = 30.0) -> list[str]:
        got: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while len(got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"watch printed only {got}")
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"watch ended after {got}: {self.stderr()}")
            got.append(line.rstrip("\n"))
        return got

    def stderr(self) -> str:
        self.close()
        return self.proc.stderr.read() if self.proc.stderr is not None else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    need_etcd()
    cluster = nexus_cluster(tmp_path_factory.mktemp("etcd-full"), peer_ports=True, metrics=True)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    need_etcd()
    cluster = nexus_cluster(tmp_path_factory.mktemp("etcd-2+1"), witnesses=[3], peer_ports=True)
    try:
        yield cluster
    finally:
        cluster.close()


def _member_at(cluster: ProcessCluster, port: int) -> int:
    return next(m.id for m in cluster.members.values() if m.address.endswith(f":{port}"))


def _watching(cluster: ProcessCluster, among: list[int]) -> int | None:
    """The one member of ``among`` serving a watch stream (from its /metrics), or None."""
    serving = []
    for i in among:
        address = cluster.members[i].metrics_address
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as page:
            text = page.read().decode()
        m = re.search(r"^nexus_kv_watchers (\S+)$", text, re.M)
        if m and float(m.group(1)) >= 1:
            serving.append(i)
    return serving[0] if len(serving) == 1 else None


def test_watch_with_history_continues_after_kill_9_of_its_leader(full: ProcessCluster) -> None:
    every = ",".join(full.endpoints())
    first = json.loads(ok(every, "put", "wk/1", "a", "-w", "json"))["header"]["revision"]
    ok(every, "put", "wk/2", "b")
    ok(every, "del", "wk/1")
    watch = Watcher(every, "--prefix", "wk/", f"--rev={first}")
    victim: int | None = None
    try:
        assert watch.lines(9) == ["PUT", "wk/1", "a", "PUT", "wk/2", "b", "DELETE", "wk/1", ""]
        ok(every, "put", "wk/3", "live")
        assert watch.lines(3) == ["PUT", "wk/3", "live"]
        # Make the member serving the watch the leader, then kill -9 it.
        target = wait_until("the watching member", lambda: _watching(full, list(full.members)),
                            20.0)
        leader = _member_at(full, int(leader_endpoint(full.endpoints()).rsplit(":", 1)[1]))
        if target != leader:
            ok(full.members[leader].address, "move-leader", format(target, "x"))
            wait_until("the moved leadership", lambda: full.wait_for_leader() == target, 30.0)
        victim = target
        full.members[victim].kill()
        rest = ",".join(m.address for m in full.members.values() if m.id != victim)
        full.wait_for_leader(among=[m for m in full.members if m != victim])
        for i in range(4, 7):
            ok(rest, "put", f"wk/{i}", f"after-{i}")
        # Each event once, in order: the watch resumed on another member after
        # the last event it had seen.
        assert watch.lines(9) == ["PUT", "wk/4", "after-4", "PUT", "wk/5", "after-5",
                                  "PUT", "wk/6", "after-6"]
        others = [i for i in full.members if i != victim]
        assert wait_until("the resumed watch", lambda: _watching(full, others), 20.0)
    finally:
        watch.close()
        if victim is not None:
            full.members[victim].start(full.args_for(victim))
    full.wait_for_leader()


def test_witness_cluster_lists_refuses_data_and_writes_with_a_full_member_down(
    witnessed: ProcessCluster,
) -> None:
    full_members = [1, 2]
    fulls = ",".join(witnessed.endpoints(full_members))
    witness = witnessed.members[3].address

    def published() -> dict[int, dict[str, object]] | None:
        # Members publish their names and client URLs through the log once
        # they run: on a loaded machine that can come after the first leader.
        out = etcdctl(fulls, "member", "list", "-w", "json")
        if out.returncode != 0:
            return None
        listed = {m["ID"]: m for m in json.loads(out.stdout)["members"]}
        return listed if all(m.get("name") for m in listed.values()) else None

    by_id = wait_until("every member to publish its name", published, 60.0)
    assert sorted(by_id) == [1, 2, 3]
    assert by_id[3]["name"] == "nexus-3-witness" and not by_id[3].get("clientURLs")
    assert not by_id[3].get("isLearner")
    for i in full_members:
        assert by_id[i]["clientURLs"] == [f"http://{witnessed.members[i].address}"]
    table = ok(fulls, "member", "list")
    assert re.search(r"^3, started, nexus-3-witness, http://[^,]+, , false$", table, re.M), table
    # The witness answers about itself ...
    status = json.loads(ok(witness, "endpoint", "status", "-w", "json"))[0]["Status"]
    assert status["header"]["member_id"] == 3 and status["leader"] in (1, 2)
    # ... and refuses data requests, saying why.
    for args in (("put", "w/1", "x"), ("get", "w/1"), ("del", "w/1"), ("lease", "grant", "10")):
        out = etcdctl(witness, *args)
        assert out.returncode != 0, args
        assert "this member is a witness" in out.stderr and "full member" in out.stderr, out
    # One full member down: the other and the witness still elect and commit.
    ok(fulls, "put", "w/before", "1")
    leader = witnessed.wait_for_leader()
    down = leader if leader in full_members else full_members[0]
    up = next(i for i in full_members if i != down)
    witnessed.members[down].kill()
    try:
        wait_until("a full leader", lambda: witnessed.wait_for_leader(among=[up, 3]) == up, 60.0)
        survivor = witnessed.members[up].address
        for i in range(5):
            ok(survivor, "put", f"w/{i}", f"v{i}")
        assert ok(survivor, "get", "w/", "--prefix", "--keys-only").split() == [
            "w/0", "w/1", "w/2", "w/3", "w/4", "w/before"]
    finally:
        witnessed.members[down].start(witnessed.args_for(down))
    # Back, it catches up (from the survivor, or the witness's held payloads).
    back = witnessed.members[down].address
    wait_until("the restarted member to catch up", lambda: etcdctl(
        back, "get", "w/4", "--consistency=s", "--print-value-only").stdout == "v4\n", 60.0)
