"""A member that missed a configuration change catches up from a leader it does not know yet.

Found by the node simulator ("guard"). The peer guard refuses requests from
senders outside the member's configuration (issue #15 item 3). A member
that was down while member 4 joined comes back with the old configuration;
when 4 leads, the member refused every append, heartbeat and snapshot from
it, and never caught up. Scripted on the node simulator (real RaftNodes,
KV service and client on virtual time; no faults besides the one down
member): member 3 is down while 4 is added and takes over, then restarts.
In the second variant the leader has also compacted its log past member
3's, so 3 needs a snapshot from 4.

The same guard refused votes at a member that is not in its own
configuration yet: a member added while cut off (still empty) became one of
two voters when the cluster shrank to {leader, it}; once the leader
restarted, it needed the empty member's vote to lead again, and the empty
member, knowing no member, refused it (seed 13 of the node simulator).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Awaitable, Callable

import pytest

from tests.sim.trace import Trace
from tests.sim_node.membership import Membership
from tests.sim_node.params import gentle
from tests.sim_node.sim import Sim
from tests.sim_node.workload import Workload

CATCH_UP_SECONDS = 30.0  # virtual


async def _until(sim: Sim, pred: object, seconds: float, what: str) -> None:
    deadline = sim.loop.time() + seconds
    while not pred():  # type: ignore[operator]
        if sim.loop.time() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g}s\n{sim._trace.excerpt(40)}")
        await asyncio.sleep(0.05)


async def _write(membership: Membership, prefix: str, n: int) -> None:
    client = membership.client
    for i in range(n):
        task = membership.sim.loop.create_task(
            client.put(f"{prefix}/{i}".encode(), b"v", timeout=10.0), context=membership.ctx)
        await task


async def _scenario(sim: Sim, compact: bool) -> None:
    for i in (1, 2, 3):
        sim.initial_peers[i] = sim.net.address(i)
    for i in (1, 2, 3):
        sim.add_member(i, witness=False, join=False)
    for i in (1, 2, 3):
        assert await sim.members[i].start()

    async def poll() -> None:
        while True:
            await asyncio.sleep(sim.params.tick_interval)
            sim.poll()

    poller = sim.loop.create_task(poll())
    workload = Workload(sim)
    membership = Membership(sim, workload)
    await _until(sim, lambda: sim.current_leader() is not None, 10.0, "a first leader")

    await _write(membership, "before", 10)
    lagging = sim.members[3]
    lagging.kill(power_loss=False, why="down while member 4 joins")
    await membership.add(witness=False)
    assert 4 in sim.members and sim.members[4].up
    await _until(sim, lambda: (c := membership.conf()) is not None and 4 in c[0], 10.0,
                 "member 4 in the configuration")
    ok = await membership._call("transfer to 4", membership.client.transfer_leader(4, timeout=10.0))
    assert ok
    await _until(sim, lambda: (lead := sim.current_leader()) is not None and lead.id == 4, 10.0,
                 "member 4 leading")
    await _write(membership, "after", 30)
    leader = sim.members[4]
    if compact:
        assert await membership._call("snapshot on 4", membership.client.snapshot(
            endpoint=leader.address, timeout=10.0))
        assert leader.node is not None and leader.node.status().snapshot_index > 15
    assert await lagging.start()

    def caught_up() -> bool:
        node, lead = lagging.node, leader.node
        return (node is not None and lead is not None
                and node.status().applied >= lead.status().commit)

    await _until(sim, caught_up, CATCH_UP_SECONDS, "member 3 catching up from leader 4")
    sm = lagging.sm
    assert sm is not None and sm.get(b"after/29")[0] == b"v"
    assert lagging.node is not None and lagging.node.leader_id == 4
    poller.cancel()
    await membership.close()


async def _empty_voter_scenario(sim: Sim) -> None:
    for i in (1, 2, 3):
        sim.initial_peers[i] = sim.net.address(i)
    for i in (1, 2, 3):
        sim.add_member(i, witness=False, join=False)
    for i in (1, 2, 3):
        assert await sim.members[i].start()

    async def poll() -> None:
        while True:
            await asyncio.sleep(sim.params.tick_interval)
            sim.poll()

    poller = sim.loop.create_task(poll())
    workload = Workload(sim)
    membership = Membership(sim, workload)
    await _until(sim, lambda: sim.current_leader() is not None, 10.0, "a first leader")
    await _write(membership, "before", 10)

    def cut_off(node: int, cut: bool) -> None:
        for other in (1, 2, 3):
            sim.net.set_cut(node, other, cut)
            sim.net.set_cut(other, node, cut)

    sim.add_member(4, witness=False, join=True)
    cut_off(4, True)  # 4 starts and is added, but hears nothing: its log stays empty
    assert await sim.members[4].start()
    assert await membership._call("add voter 4", membership.client.add_member(
        4, sim.members[4].address, role="voter", timeout=10.0))
    lead = sim.current_leader()
    assert lead is not None
    others = sorted({1, 2, 3} - {lead.id})
    assert await membership._call(f"remove {others[0]}", membership.client.remove_member(
        others[0], timeout=10.0))
    # The last removal takes effect when appended: {leader, 4}, which cannot commit it.
    assert not await membership._call(f"remove {others[1]}", membership.client.remove_member(
        others[1], timeout=2.0))
    assert lead.node is not None and lead.node._driver.raft.conf_state.voters == {lead.id, 4}
    lead.kill(power_loss=False, why="restarts with voters {itself, 4}")
    cut_off(4, False)
    assert await lead.start()

    def caught_up() -> bool:
        now = sim.current_leader()
        node = sim.members[4].node
        return (now is not None and now.node is not None and node is not None
                and node.status().applied >= now.node.status().commit > 0)

    await _until(sim, caught_up, CATCH_UP_SECONDS, "a leader elected with 4's vote")
    sm = sim.members[4].sm
    assert sm is not None and sm.get(b"before/9")[0] == b"v"
    poller.cancel()
    await membership.close()


def _run(scenario: Callable[[Sim], Awaitable[None]]) -> None:
    params = dataclasses.replace(
        gentle(1), voters=3, witness=False, loss=0.0, dup=0.0, slow=0.0,
        snapshot_every=10_000, keep_entries=0,
    )
    tmp = tempfile.mkdtemp(prefix="nx-lagging-")
    sim = Sim(params, Trace(keep=200), tmp)
    # Tasks of killed processes end with errors nobody retrieves: say nothing.
    sim.loop.set_exception_handler(lambda loop, context: None)
    try:
        asyncio.set_event_loop(sim.loop)
        sim.loop.run_until_complete(sim.loop.create_task(scenario(sim), context=sim.root))
        assert sim.violation is None, sim.violation
    finally:
        asyncio.set_event_loop(None)
        shutil.rmtree(tmp, ignore_errors=True)
        sim.loop.end()


@pytest.mark.parametrize("compact", [False, True], ids=["entries", "snapshot"])
def test_member_down_while_its_new_leader_joined_catches_up_from_it(compact: bool) -> None:
    _run(lambda sim: _scenario(sim, compact))


def test_empty_member_votes_for_the_leader_it_needs_after_the_cluster_shrank_to_two() -> None:
    _run(_empty_voter_scenario)
