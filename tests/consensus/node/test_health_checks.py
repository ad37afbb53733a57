"""The periodic health check's decisions (issue #12's warnings), on scripted statuses.

A logic test of :class:`HealthMonitor.check`: the node's status and the clock
are given, so each rule is exercised exactly: apply falling behind commit
for a while, quorum lost from the leader's view and regained, silence
without a leader beyond the grace period, and the start-up catch-up gate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from nexus_raft.consensus.node.alerts import Alerts
from nexus_raft.consensus.node.health import HealthMonitor
from nexus_raft.consensus.node.status import MemberStatus, NodeStatus


def member(nid: int, role: str, reachable: bool | None) -> MemberStatus:
    return MemberStatus(nid, f"127.0.0.1:{7000 + nid}", "voter", role, 0, 0, None, 0, reachable)


LEADER = NodeStatus(
    id=1, role="leader", term=3, leader_id=1, leader_address="127.0.0.1:7001",
    commit=10, applied=10, last_index=10,
    members=[member(1, "leader", True), member(2, "follower", True),
             member(3, "follower", True)],
)  # fmt: skip


class Script:
    """The status the monitor reads next."""

    def __init__(self, status: NodeStatus) -> None:
        self.status = status

    def __call__(self) -> NodeStatus:
        return self.status


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="tests.health")
    return caplog


def monitor(script: Script) -> HealthMonitor:
    alerts = Alerts(1, interval=30.0, logger=logging.getLogger("tests.health"))
    return HealthMonitor(script, alerts, election_timeout=0.4)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    caplog.clear()
    return out


def test_apply_falling_behind_commit_is_warned_after_it_lasts(
    lines: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        script = Script(replace(LEADER, commit=5000, applied=3000))
        health = monitor(script)
        await health.check(now=100.0)
        await health.check(now=103.0)
        assert warnings(lines) == []  # behind, but not for 5 s yet
        await health.check(now=105.5)
        assert warnings(lines) == [
            "node 1: apply is falling behind commit: applied 3000, committed 5000 "
            "(2000 behind for 5.5s)"
        ]
        script.status = replace(LEADER, commit=5000, applied=4500)  # within the bound
        await health.check(now=106.0)
        script.status = replace(LEADER, commit=7000, applied=4500)
        await health.check(now=107.0)
        assert warnings(lines) == []  # the clock restarted when it caught up

    asyncio.run(scenario())


def test_a_leader_that_hears_from_too_few_voters_reports_quorum_lost_then_regained(
    lines: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        script = Script(LEADER)
        health = monitor(script)
        await health.check(now=1.0)
        assert health.serving and warnings(lines) == []
        script.status = replace(LEADER, members=[member(1, "leader", True),
                                                 member(2, "follower", False),
                                                 member(3, "follower", False)])  # fmt: skip
        await health.check(now=2.0)
        assert warnings(lines) == [
            "node 1: quorum lost: leader 1 hears from 1 of 3 voters (silent: 2, 3)"
        ]
        assert not health.serving  # gRPC health: NOT_SERVING without a quorum
        script.status = LEADER
        await health.check(now=3.0)
        assert warnings(lines) == ["node 1: quorum regained: leader 1 hears from 3 of 3 voters"]
        assert health.serving

    asyncio.run(scenario())


def test_no_leader_beyond_the_grace_period_is_quorum_lost(
    lines: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        script = Script(replace(LEADER, role="follower", id=2, leader_id=0, leader_address=None))
        health = monitor(script)
        await health.check(now=10.0)
        await health.check(now=12.9)
        assert warnings(lines) == []  # an election may take that long
        await health.check(now=13.5)
        assert warnings(lines) == ["node 1: quorum lost: no leader for 3.5s (term 3)"]

    asyncio.run(scenario())
