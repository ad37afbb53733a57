"""Operator warnings (issue #12): each kind logs at most once per interval, then
says how many it held back."""

from __future__ import annotations

import logging

import pytest

from nexus_raft.consensus.node.alerts import Alerts, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[tuple[str, str]]:
        out = [(r.levelname, r.getMessage()) for r in self.records]
        self.records.clear()
        return out


@pytest.fixture
def setup() -> tuple[Alerts, Clock, Lines]:
    clock, lines = Clock(), Lines()
    logger = logging.getLogger("tests.alerts")
    logger.handlers = [lines]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return Alerts(7, interval=30.0, logger=logger, clock=clock), clock, lines


def test_rate_limiter_allows_once_per_interval_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, clock)
    assert limiter.allow("a") and limiter.allow("b")
    assert not limiter.allow("a") and not limiter.allow("a")
    clock.now += 9.9
    assert not limiter.allow("a")
    clock.now += 0.1
    assert limiter.allow("a") and limiter.take_held("a") == 3 and limiter.take_held("a") == 0
    limiter.forget("a")
    assert limiter.allow("a")
    with pytest.raises(ValueError):
        RateLimiter(-1.0)


def test_a_persistent_slow_disk_warns_once_per_interval_and_counts_the_rest(
    setup: tuple[Alerts, Clock, Lines],
) -> None:
    alerts, clock, lines = setup
    alerts.slow_fsync(0.25, 3)
    assert lines.take() == [("WARNING", "node 7: slow fsync: saving 3 entries took 250 ms "
                             "(over 100 ms); the disk is overloaded")]  # fmt: skip
    for _ in range(5):
        alerts.slow_fsync(0.3, 1)
    assert lines.take() == []
    clock.now += 30
    alerts.slow_fsync(0.2, 1)
    (line,) = lines.take()
    assert line[1].endswith("(5 similar warnings held back)")


def test_peer_warnings_are_per_peer_and_reachable_again_is_said_once(
    setup: tuple[Alerts, Clock, Lines],
) -> None:
    alerts, _, lines = setup
    alerts.peer_unreachable(2, "127.0.0.1:7002", None)
    alerts.peer_unreachable(3, None, 4.5)
    alerts.peer_unreachable(2, "127.0.0.1:7002", 1.0)  # held back
    assert [m for _, m in lines.take()] == [
        "node 7: peer 2 at 127.0.0.1:7002 is unreachable (never answered)",
        "node 7: peer 3 at an unknown address is unreachable (silent for 4.5s)",
    ]
    alerts.peer_reachable(2)
    alerts.peer_reachable(2)
    alerts.peer_reachable(4)  # never reported unreachable: nothing to say
    assert lines.take() == [("INFO", "node 7: peer 2 is reachable again")]
    alerts.peer_unreachable(2, "127.0.0.1:7002", 0.5)  # a new outage is reported at once
    assert len(lines.take()) == 1
    alerts.peer_other_cluster(5, "127.0.0.1:7005", "cluster nx-b, not nx-a")
    assert lines.take() == [("WARNING", "node 7: peer 5 at 127.0.0.1:7005 belongs to another "
                             "cluster: cluster nx-b, not nx-a")]  # fmt: skip


def test_quorum_lost_then_regained_and_apply_falling_behind(
    setup: tuple[Alerts, Clock, Lines],
) -> None:
    alerts, _, lines = setup
    alerts.quorum(True, "3 of 3 voters")
    assert lines.take() == [] and not alerts.quorum_lost
    alerts.quorum(False, "1 of 3 voters")
    alerts.quorum(False, "1 of 3 voters")  # held back
    assert [m for _, m in lines.take()] == ["node 7: quorum lost: 1 of 3 voters"]
    assert alerts.quorum_lost
    alerts.quorum(True, "2 of 3 voters")
    alerts.quorum(True, "3 of 3 voters")
    assert lines.take() == [("WARNING", "node 7: quorum regained: 2 of 3 voters")]
    alerts.quorum(False, "1 of 3 voters")  # lost again: said at once
    assert len(lines.take()) == 1
    alerts.apply_behind(5000, 3000, 12.0)
    assert lines.take() == [("WARNING", "node 7: apply is falling behind commit: applied 3000, "
                             "committed 5000 (2000 behind for 12.0s)")]  # fmt: skip
