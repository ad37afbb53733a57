"""Joining by itself: ``nexus-node --join HOST:PORT`` with real nexus-node processes.

No ``nexusctl add-member``, no cluster id to look up: the new member asks
any member for the cluster id and the members, is added as a learner,
catches up and is promoted to voter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from .harness import ProcessCluster, wait_until

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]


def _kinds(cluster: ProcessCluster) -> dict[int, str]:
    client = cluster.client()
    return {m.id: m.kind for m in client.members()}


@pytest.mark.slow
def test_a_new_member_joins_by_itself_and_becomes_a_voter(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, spare=1, extra_args=["--snapshot-every", "50", "--keep-entries",
                                                   "10"])  # fmt: skip
    client = cluster.client()
    for i in range(120):
        client.put(f"j/{i}", str(i).encode())
    leader = cluster.wait_for_leader()
    follower = next(i for i in cluster.initial if i != leader)
    new = cluster.members[4]
    start = time.monotonic()
    # Only one follower's address: it tells the rest, and forwards the add.
    new.start(["--id", "4", "--listen", new.address, "--data-dir", str(new.data_dir),
               "--join", cluster.members[follower].address, "--log-level", "info",
               "--promote-lag", "5",
               "--snapshot-every", "50", "--keep-entries", "10"])  # fmt: skip
    wait_until("member 4 to be a voter", lambda: _kinds(cluster).get(4) == "voter", 60)
    took = time.monotonic() - start
    print(f"--join to voter: {took:.2f}s (process start, catch-up by snapshot, promotion)")
    # The cluster may show the promotion before the member logged it.
    wait_until("member 4 to log its promotion",
               lambda: "promoted to voter" in new.log_tail(200), 30)  # fmt: skip
    log = new.log_tail(200)
    assert "added to cluster" in log and "promoted to voter" in log, log
    # --promote-lag 5: promoted only once at most 5 entries behind the leader.
    behind = re.search(r"member 4 caught up \((\d+) entries behind the leader\)", log)
    assert behind is not None and int(behind.group(1)) <= 5, log
    commit = cluster.status_of(cluster.wait_for_leader()).commit
    cluster.wait_applied(4, commit, timeout=30)
    assert cluster.client(ids=[4]).get("j/119", serializable=True) == b"119"
    assert cluster.status_of(4).cluster_id == client.status().cluster_id
    # It counts as a voter: it can lead.
    client.transfer_leader(4)
    assert cluster.wait_for_leader(among=[1, 2, 3, 4]) == 4
    client.put("j/after", b"x")
    # The same command again (a restart): its data directory knows the
    # cluster; it neither asks to be added again nor needs the seed.
    new.terminate()
    new.start(["--id", "4", "--listen", new.address, "--data-dir", str(new.data_dir),
               "--join", cluster.members[follower].address, "--log-level", "info"])  # fmt: skip
    wait_until("member 4 back", lambda: cluster.status_of(4).leader_id, 30)
    assert _kinds(cluster) == {1: "voter", 2: "voter", 3: "voter", 4: "voter"}


def test_join_as_a_learner_and_an_id_in_use_is_refused(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, spare=2)
    client = cluster.client()
    client.put("k", b"v")
    cluster.start_joining(4, join_as="learner")
    wait_until("member 4 to be a learner", lambda: _kinds(cluster).get(4) == "learner", 30)
    cluster.wait_applied(4, client.status().commit, timeout=30)
    assert cluster.client(ids=[4]).get("k", serializable=True) == b"v"
    # Member 2 exists at another address: a newcomer claiming id 2 is refused.
    intruder = cluster.members[5]
    intruder.start(["--id", "2", "--listen", intruder.address, "--data-dir",
                    str(intruder.data_dir), "--join", cluster.members[1].address])  # fmt: skip
    assert intruder.proc is not None and intruder.proc.wait(timeout=30) == 2
    assert "member 2 of cluster" in intruder.log_tail() and "is at" in intruder.log_tail()
    assert sorted(_kinds(cluster)) == [1, 2, 3, 4]


def test_join_as_a_witness_with_nexus_node(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(2, spare=1)
    client = cluster.client()
    client.put("k", b"v")
    cluster.start_joining(3, join_as="witness")
    wait_until("member 3 to be a witness", lambda: _kinds(cluster).get(3) == "witness", 30)
    client.put("k", b"w")
    info = wait_until("the witness to follow", lambda: i if (
        i := cluster.status_of(3)).commit >= client.status().commit else None, 30)
    assert info.role in {"witness", "follower"} or info.id == 3
