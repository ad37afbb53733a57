"""One seed from start to verdict: boot, faults and changes under load, heal, converge, check.

1. The initial members boot (a witness among them if the seed says so).
2. Clients start their recorded workload; a poll runs every tick (election
   safety, leaders, configuration shapes, removed members stop).
3. Until the seed's last tick: a fault, an armed crash or an admin
   operation every ``fault_gap`` seconds on average; membership changes and
   transfers run in the background, one at a time.
4. Heal: every link, pause and armed crash is undone, every down member
   restarts. Liveness: a leader must appear and every member of its
   configuration catch up within a minute of virtual time; a final write
   and read must succeed.
5. Final checks: every full member holds identical data, every
   acknowledged put is within what they applied, and the whole client
   history is linearizable (tests/lin).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from nexus_raft.errors import NexusRaftError
from tests.lin.checker import Verdict, check_history
from tests.sim.checker import Violation
from tests.sim_node.faults import ARMED, Faults
from tests.sim_node.membership import Membership
from tests.sim_node.sim import Sim
from tests.sim_node.workload import Workload

__all__ = ["run_scenario"]

_CONVERGE_SECONDS = 60.0
_LIN_STEPS = 2_000_000


async def _poll(sim: Sim, membership: Membership) -> None:
    interval = sim.params.tick_interval
    n = 0
    while True:
        await asyncio.sleep(interval)
        sim.poll()
        n += 1
        if n % 25 == 0:
            membership.reconcile()


async def _faults(sim: Sim, faults: Faults, membership: Membership, end: float) -> None:
    rng = sim.rng
    loop = sim.loop
    p = sim.params
    admin: asyncio.Task[None] | None = None

    def background(coro: Any) -> None:
        nonlocal admin
        if admin is not None and not admin.done():
            coro.close()
            return
        admin = loop.create_task(coro)

    while loop.time() < end:
        await asyncio.sleep(rng.expovariate(1.0 / p.fault_gap))
        r = rng.random()
        if p.gentle and (r < 0.31 or 0.76 <= r < 0.78 or r >= 0.87):
            continue  # crashes, restarts, removals of a killed member, compactions
        if r < 0.08:
            faults.crash()
        elif r < 0.20:
            faults.arm()
        elif r < 0.28:
            background(_snapshot_under_fire(sim, faults, membership))
        elif r < 0.31:
            background(faults.clean_restart())
        elif r < 0.36:
            faults.pause()
        elif r < 0.40:
            faults.clock_jump()
        elif r < 0.47:
            faults.partition()
        elif r < 0.51:
            faults.isolate_leader()
        elif r < 0.54:
            faults.isolate_next_leader = True
            if rng.random() < 0.5:
                faults.isolate_leader()  # provoke an election
        elif r < 0.58:
            faults.one_way()
        elif r < 0.63:
            faults.lose_answers()
        elif r < 0.66:
            faults.weather()
        elif r < 0.76:
            background(membership.step(random_kind=not p.journey))
        elif r < 0.78:
            background(membership.remove_down())
        elif r < 0.83:
            background(membership.transfer())
        elif r < 0.85:
            background(membership.change_and_transfer())
        elif r < 0.87:
            background(membership.two_changes())
        else:
            background(membership.snapshot())
    if admin is not None:
        await admin


async def _snapshot_under_fire(sim: Sim, faults: Faults, membership: Membership) -> None:
    """Make a follower lag past the leader's compaction, arm a crash in its install, heal."""
    rng = sim.rng
    leader = sim.current_leader()
    if leader is None:
        return
    followers = [m for m in sim.live() if m.id != leader.id and not m.witness and not m.removed]
    if not followers:
        return
    m = rng.choice(followers)
    others = [h for h in faults.hosts() if h != m.id]
    net = sim.net
    for h in others:
        net.set_cut(h, m.id, True)
        net.set_cut(m.id, h, True)
    sim.trace("lag", f"member {m.id} cut off so that it needs a snapshot")
    await asyncio.sleep(rng.uniform(0.5, 2.5))
    await membership.snapshot_on(leader)
    where = rng.choice(("restore", "log save after restore", "log save after restore",
                        "drop_tree", "any write"))
    if m.up:
        # A restore takes a dozen writes and more: crash at any of them.
        steps = 14 if where in ("restore", "drop_tree") else 5
        m.disk.arm(after=rng.randint(0, steps), when=ARMED[where], label=where,
                   power_loss=rng.random() < 0.3)
        sim.trace("arm", f"member {m.id}: crash {where}")
    for h in others:
        net.set_cut(h, m.id, False)
        net.set_cut(m.id, h, False)
    await asyncio.sleep(rng.uniform(2.0, 6.0))
    m.disk.disarm()


def _lagging(sim: Sim, membership: Membership) -> str | None:
    """Why the cluster has not converged yet (None: one leader, every member of its
    configuration up and, for full members, applied up to its commit index)."""
    for m in sim.live():
        failed = sim.failed(m)
        if failed is not None:
            raise failed
    membership.reconcile()
    leader = sim.current_leader()
    if leader is None or leader.node is None:
        return "no leader"
    conf = membership.conf()
    if conf is None:
        return f"leader {leader.id} has not applied its configuration yet"
    full, witnesses = conf
    commit = leader.node.status().commit
    lagging = []
    for i in sorted(full | witnesses):
        m = sim.members.get(i)
        if m is None or not m.up or m.node is None:
            lagging.append(f"{i} down")
        elif i in full and m.node.status().applied < commit:
            lagging.append(f"{i} applied {m.node.status().applied} < {commit}")
    if not lagging:
        return None
    return f"leader {leader.id} (commit {commit}), lagging: {', '.join(lagging)}"


async def _settle(sim: Sim, membership: Membership, seconds: float, what: str) -> None:
    """Wait until the cluster has converged (see :func:`_lagging`), or fail ``what``."""
    deadline = sim.loop.time() + seconds
    while (why := _lagging(sim, membership)) is not None:
        if sim.loop.time() > deadline:
            raise Violation("liveness", f"no convergence {seconds:.0f}s {what}: {why}")
        await asyncio.sleep(0.05)


async def _converge(sim: Sim, membership: Membership, workload: Workload) -> None:
    """Liveness after healing: one leader, every member of its configuration caught
    up, then a write and a read succeed."""
    loop = sim.loop
    await _settle(sim, membership, _CONVERGE_SECONDS, "after healing")
    client = membership.client
    task = loop.create_task(_final_write(client), context=membership.ctx)
    try:
        await task
    except NexusRaftError as exc:
        raise Violation("liveness", f"a write and read after healing failed: {exc}") from None


async def _final_write(client: Any) -> None:
    await client.put(b"final/check", b"ok", timeout=20.0)
    got = await client.get(b"final/check", timeout=20.0)
    if got != b"ok":
        raise Violation("linearizable read", f"final read returned {got!r} after writing b'ok'")


async def _check_watch(sim: Sim, membership: Membership, workload: Workload) -> None:
    """The watcher's events, replayed, must end in the members' data (nothing lost, no
    duplicate, in order), once it has caught up."""
    conf = membership.conf()
    members = set() if conf is None else conf[0]
    ref = next((m for m in sim.live() if m.id in members and m.sm is not None), None)
    if ref is None or ref.sm is None:
        return
    sm = ref.sm
    want = {k: v for k in sm.list_keys(b"k") if (v := sm.get(k)[0]) is not None}
    deadline = sim.loop.time() + 30.0
    while workload.watched_state() != want:
        if workload.watch_compacted:
            sim.stats["watch history compacted"] += 1
            return
        if sim.loop.time() > deadline:
            got = workload.watched_state()
            diff = sorted(set(got.items()) ^ set(want.items()))[:4]
            raise Violation("watch", f"the watcher's events (up to revision "
                                     f"{workload.watch_position}) do not rebuild member "
                                     f"{ref.id}'s data, e.g. {diff}")
        await asyncio.sleep(0.1)
    sim.hit("watch rebuilt the final state")
    sim.stats["watch events"] += len(workload.watched)
    sim.stats["watch restarts"] += workload.watch_restarts


def _final_state(sim: Sim, membership: Membership, workload: Workload) -> None:
    """Every full member holds the same data; no acknowledged put is beyond what they applied."""
    dumps: dict[int, list[tuple[bytes, bytes | None]]] = {}
    top = 0
    conf = membership.conf()
    members = set() if conf is None else conf[0] | conf[1]
    for m in sim.live():
        if m.sm is None or m.id not in members:
            continue
        sm = m.sm
        dumps[m.id] = [(k, sm.get(k)[0]) for k in sm.list_keys()]
        top = max(top, sm.revision())  # puts answer the revision they made
    items = sorted(dumps.items())
    for (a, da), (b, db) in itertools.pairwise(items):
        if da != db:
            diff = sorted(set(da) ^ set(db))[:4]
            raise Violation("replicas identical", f"members {a} and {b} hold different data "
                                                  f"after converging, e.g. {diff}")
    for rev, key, value in workload.acked:
        if rev > top:
            raise Violation("acknowledged write lost",
                            f"put {key!r}={value!r} was acknowledged at revision {rev}, but the "
                            f"the members' data only reaches revision {top}")


async def run_scenario(sim: Sim) -> None:
    """The whole seed (see the module docstring); raises Violation on a broken rule."""
    p = sim.params
    n = p.voters + (1 if p.witness else 0)
    ids = list(range(1, n + 1))
    for i in ids:
        sim.initial_peers[i] = sim.net.address(i)
    if p.witness:
        sim.initial_witnesses = {ids[-1]}
    for i in ids:
        sim.add_member(i, witness=i in sim.initial_witnesses, join=False)
    for i in ids:
        await sim.members[i].start()
    workload = Workload(sim)
    membership = Membership(sim, workload)
    faults = Faults(sim)
    sim.after_crash = faults.after_crash
    membership.restart_later = faults.restart_later
    poller = sim.loop.create_task(_poll(sim, membership))
    workload.start()
    workload.start_watcher()
    await _faults(sim, faults, membership, p.ticks * p.tick_interval)
    sim.after_crash = None
    await faults.heal()
    await _converge(sim, membership, workload)
    sim.hit("cluster recovered after the faults")
    await workload.stop()
    await _check_watch(sim, membership, workload)
    await workload.stop_watcher()
    await _settle(sim, membership, 30.0, "after the clients stopped")
    _final_state(sim, membership, workload)
    result = check_history(workload.history.operations(), timeout=None, max_steps=_LIN_STEPS)
    sim.stats["client operations"] += workload.ops
    if result.verdict is Verdict.ILLEGAL:
        raise Violation("linearizability", result.explain()[:2000])
    if result.verdict is Verdict.UNKNOWN:
        sim.stats["linearizability check inconclusive"] += 1
    poller.cancel()
    await membership.close()
