"""Membership changes on real nexus-node processes: learner add + promote, voter removal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .harness import ProcessCluster, wait_until

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]


def kinds(cluster: ProcessCluster) -> dict[int, str]:
    leader = cluster.wait_for_leader()
    return {m.id: m.kind for m in cluster.status_of(leader).members}


def test_learner_is_added_catches_up_and_is_promoted(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3, spare=1)
    client = cluster.client()
    for i in range(30):
        client.put(f"learn/{i}", str(i).encode())
    cluster.start_joining(4, join_as="learner")  # adds itself as a learner
    wait_until("member 4 to be a learner", lambda: kinds(cluster).get(4) == "learner", 30)
    leader = cluster.wait_for_leader()
    cluster.wait_applied(4, cluster.status_of(leader).commit, timeout=20)
    learner = cluster.client(ids=[4])
    assert learner.get("learn/29", serializable=True) == b"29"
    assert cluster.status_of(4).role in {"learner", "follower"}

    client.add_member(4, cluster.members[4].address, role="voter")  # promote
    wait_until("member 4 to be a voter", lambda: kinds(cluster).get(4) == "voter", 10)
    client.put("learn/after", b"promoted")
    cluster.wait_applied(4, cluster.status_of(cluster.wait_for_leader()).commit)
    assert learner.get("learn/after", serializable=True) == b"promoted"
    # A voter can lead: hand it leadership.
    client.transfer_leader(4)
    assert cluster.wait_for_leader(among=[1, 2, 3, 4], not_id=leader) == 4


def test_voter_is_removed_and_the_cluster_carries_on(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    client.put("rm/before", b"1")
    leader = cluster.wait_for_leader()
    victim = next(i for i in cluster.initial if i != leader)
    client.remove_member(victim)
    wait_until("the member to be gone", lambda: victim not in kinds(cluster), 10)
    cluster.members[victim].kill()
    # Two voters left, both needed: writes still commit.
    client.put("rm/after", b"2")
    assert client.get("rm/after") == b"2"
    assert sorted(kinds(cluster)) == sorted(i for i in cluster.initial if i != victim)
