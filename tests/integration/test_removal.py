"""A removed member learns it was removed and stops (exit 3), with real nexus-node processes.

Before, a removed member kept running and answered "no leader known" for ever.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from .harness import Member, ProcessCluster, wait_until

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]

EXIT_REMOVED = 3


def _exit_of(member: Member, timeout: float = 30.0) -> int:
    assert member.proc is not None
    return member.proc.wait(timeout=timeout)


def _removal_line(member: Member) -> str:
    lines = [ln for ln in member.log_tail(60).splitlines() if "was removed from cluster" in ln]
    assert lines, member.log_tail()
    return lines[-1]


@pytest.mark.slow
def test_a_removed_follower_stops_and_does_not_start_again(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    client.put("k", b"v")
    leader = cluster.wait_for_leader()
    victim = next(i for i in cluster.initial if i != leader)
    start = time.monotonic()
    client.remove_member(victim)
    assert _exit_of(cluster.members[victim]) == EXIT_REMOVED
    took = time.monotonic() - start
    print(f"removed follower stopped {took:.2f}s after remove-member")
    assert f"member {victim} was removed from cluster" in _removal_line(cluster.members[victim])
    # Its data directory remembers: it refuses to serve again.
    cluster.members[victim].start(cluster.args_for(victim))
    assert _exit_of(cluster.members[victim]) == EXIT_REMOVED
    assert "cannot serve again" in _removal_line(cluster.members[victim])
    client.put("k", b"after")  # the two left carry on
    assert client.get("k") == b"after"


@pytest.mark.slow
def test_a_member_removed_while_down_learns_it_when_it_comes_back(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    leader = cluster.wait_for_leader()
    victim = next(i for i in cluster.initial if i != leader)
    cluster.members[victim].kill()
    client.remove_member(victim)
    client.put("k", b"v")
    # It never receives its removal (the leader no longer replicates to it):
    # it hears from no leader, asks its peers, and they say so.
    cluster.members[victim].start(cluster.args_for(victim))
    assert _exit_of(cluster.members[victim], timeout=60) == EXIT_REMOVED
    line = _removal_line(cluster.members[victim])
    assert re.search(r"(member \d+ no longer counts|members [\d, ]+ no longer count) it in "
                     r"the configuration", line), line


@pytest.mark.slow
def test_a_leader_that_removes_itself_stops_and_another_leads(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    client.put("k", b"v")
    leader = cluster.wait_for_leader()
    client.remove_member(leader)
    assert _exit_of(cluster.members[leader]) == EXIT_REMOVED
    rest = [i for i in cluster.initial if i != leader]
    new = cluster.wait_for_leader(among=rest)
    assert new != leader
    client.put("k", b"after")
    assert client.get("k") == b"after"
    assert {m.id for m in client.members()} == set(rest)
    wait_until("no member names the removed one", lambda: all(
        leader not in {m.id for m in cluster.status_of(i).members} for i in rest), 10)
