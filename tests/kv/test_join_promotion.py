"""``--join-as voter --promote-lag N``: the joining member's promotion decision.

:func:`nexus_raft.kv.join.promote_when_caught_up` polls the leader's view of
the learner and promotes it only once the leader's last index is at most
``max_lag`` entries ahead of the learner's match. This is logic over a
sequence of status answers, so the client here is a script of them; the
whole join with real processes is tests/integration/test_join.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nexus_raft.kv.client.types import MemberInfo, NodeInfo
from nexus_raft.kv.join import promote_when_caught_up


def _view(last_index: int, match: int, *, leader: bool = True, kind: str = "learner") -> NodeInfo:
    members = (
        MemberInfo(1, "127.0.0.1:1", "voter", "leader" if leader else "follower", last_index, 0),
        MemberInfo(4, "127.0.0.1:4", kind, "follower", match, 0),
    )
    return NodeInfo(endpoint="127.0.0.1:1", id=1 if leader else 2,
                    role="leader" if leader else "follower", term=3, leader_id=1,
                    leader_address="127.0.0.1:1", commit=last_index, applied=last_index,
                    last_index=last_index, cluster_id="nx-test", revision=0,
                    members=members)  # fmt: skip


@dataclass
class ScriptedCluster:
    """Answers ``status()`` from a script; records promotions with the lag seen last."""

    views: list[NodeInfo]
    promoted_at_lag: list[int] = field(default_factory=list)
    polls: int = 0

    async def status(self) -> NodeInfo:
        view = self.views[min(self.polls, len(self.views) - 1)]
        self.polls += 1
        return view

    async def add_member(self, node_id: int, address: str, *, role: str) -> None:
        assert (node_id, address, role) == (4, "127.0.0.1:4", "voter")
        last = self.views[min(self.polls, len(self.views)) - 1]
        me = next(m for m in last.members if m.id == 4)
        self.promoted_at_lag.append(last.last_index - me.match)


def _promote(cluster: ScriptedCluster, max_lag: int) -> bool:
    async def go() -> bool:
        return await promote_when_caught_up(
            cluster, 4, "127.0.0.1:4", max_lag=max_lag, poll=0  # type: ignore[arg-type]
        )

    return asyncio.run(go())


def test_a_learner_further_behind_than_promote_lag_waits_until_within_it() -> None:
    cluster = ScriptedCluster([_view(1000, 0), _view(1000, 600), _view(1000, 899),
                               _view(1010, 910), _view(1010, 950)])  # fmt: skip
    assert _promote(cluster, max_lag=100)
    # 1000, 400 and 101 entries behind were waited out; 100 is within the bound.
    assert cluster.polls == 4 and cluster.promoted_at_lag == [100]


def test_promote_lag_zero_waits_for_a_learner_that_has_every_entry() -> None:
    cluster = ScriptedCluster([_view(50, 10), _view(50, 49), _view(51, 50), _view(51, 51)])
    assert _promote(cluster, max_lag=0)
    assert cluster.polls == 4 and cluster.promoted_at_lag == [0]


def test_a_view_from_a_member_that_does_not_lead_never_promotes() -> None:
    # A follower's view of the learner's match is not the leader's: no promotion on it.
    cluster = ScriptedCluster([_view(100, 100, leader=False), _view(100, 100, leader=False),
                               _view(100, 100)])  # fmt: skip
    assert _promote(cluster, max_lag=5)
    assert cluster.polls == 3 and cluster.promoted_at_lag == [0]


def test_an_already_promoted_member_is_not_promoted_again() -> None:
    cluster = ScriptedCluster([_view(100, 0, kind="voter")])
    assert _promote(cluster, max_lag=5)
    assert cluster.promoted_at_lag == []
