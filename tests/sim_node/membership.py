"""Membership changes and leadership transfers, through the real KV admin API.

An operator :class:`~nexus_raft.kv.client.Client` (its own process on its
own host) calls ``add_member``, ``remove_member``, ``transfer_leader`` and
``snapshot`` on the members' real ``KVService``, exactly as ``nexusctl``
does. New members are new machines started with ``join=True``. Removals
pick their victim on purpose: the leader, the witness, a member that is
down, or any follower.

The membership *journey* walks the configuration through the shapes where
bugs lived: three full voters, two, two plus a witness, one full voter plus
a witness, and back up, with faults continuing in between.

:meth:`Membership.reconcile` follows the leader's applied configuration: a
member that left it stops, as a removed ``nexus-node`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.client import Client
from tests.sim_node.member import Member
from tests.sim_node.workload import OPERATOR_HOST, Workload

if TYPE_CHECKING:
    from tests.sim_node.sim import Sim

__all__ = ["Membership"]

_CHANGE_TIMEOUT = 5.0


class Membership:
    """Admin operations of one seed (see the module docstring)."""

    def __init__(self, sim: Sim, workload: Workload) -> None:
        self.sim = sim
        self.rng = sim.rng
        self._workload = workload
        self._client: Client | None = None
        self._endpoints: list[str] = []
        self.ctx: Any = None
        self.changing = 0  # configuration changes in flight
        self.bottomed = False
        self.added_at: dict[int, float] = {}
        self.seen_in_conf: set[int] = set()
        self.restart_later: Callable[[Member], None] | None = None

    @property
    def client(self) -> Client:
        """The operator's client, remade whenever the members changed (as an operator would)."""
        endpoints = self._workload.endpoints()
        if self._client is None or endpoints != self._endpoints:
            old, old_ctx = self._client, self.ctx
            self._client, self.ctx = self._workload.client(OPERATOR_HOST, "operator")
            self._endpoints = endpoints
            if old is not None:
                self.sim.loop.create_task(old.close(), context=old_ctx)
        return self._client

    async def _call(self, what: str, coro: Any) -> bool:
        """Run an admin call in the operator's process; True when it succeeded."""
        task = self.sim.loop.create_task(coro, context=self.ctx)
        try:
            await task
        except NexusRaftError as exc:
            text = str(exc)
            self.sim.trace("admin", f"{what} failed: {type(exc).__name__}: {text[:120]}")
            if any(w in text for w in ("configuration", "pending", "not yet committed",
                                       "refused")):
                self.sim.hit("configuration change refused")
            return False
        self.sim.trace("admin", f"{what} done")
        return True

    def conf(self) -> tuple[set[int], set[int]] | None:
        """(full voters, witnesses) as the current leader applied them."""
        leader = self.sim.current_leader()
        if leader is None or leader.node is None or leader.node._applier is None:
            return None
        c = leader.node._applier.conf
        if leader.id not in c.voters:
            # A leader that has not yet applied the configuration entries it
            # holds (a member that just joined) is no authority on membership.
            return None
        return set(c.voters - c.witnesses), set(c.witnesses)

    # --- operations -------------------------------------------------------------------------

    async def add(self, *, witness: bool) -> None:
        """Start a new machine that joins, then ask the cluster to add it."""
        sim = self.sim
        new_id = max(sim.members) + 1
        m = sim.add_member(new_id, witness=witness, join=True)
        self.added_at[new_id] = sim.loop.time()
        if not await m.start():
            return
        self.changing += 1
        try:
            ok = await self._call(
                f"add {'witness' if witness else 'voter'} {new_id}",
                self.client.add_member(new_id, m.address, role="witness" if witness else "voter",
                                       timeout=_CHANGE_TIMEOUT),
            )
        finally:
            self.changing -= 1
        if ok:
            sim.hit("member added")

    async def remove(self, kind: str | None = None) -> None:
        """Remove the leader, the witness, a down member or a follower."""
        conf = self.conf()
        leader = self.sim.current_leader()
        if conf is None or leader is None:
            return
        full, witnesses = conf
        kind = kind or self.rng.choice(("leader", "witness", "down", "follower"))
        victim: int | None = None
        if kind == "witness" and witnesses:
            victim = min(witnesses)
        elif kind == "down":
            down = [i for i in sorted(full | witnesses)
                    if i in self.sim.members and not self.sim.members[i].up]
            victim = self.rng.choice(down) if down else None
        elif kind == "leader":
            victim = leader.id
        else:
            followers = sorted((full | witnesses) - {leader.id})
            victim = self.rng.choice(followers) if followers else None
        if victim is None:
            return
        left_full = full - {victim}
        if not left_full or len(left_full | witnesses - {victim}) < 2:
            return  # never below two voters, never without a full voter
        was_leader = victim == leader.id
        was_down = victim in self.sim.members and not self.sim.members[victim].up
        was_witness = victim in witnesses
        self.changing += 1
        try:
            ok = await self._call(f"remove {victim} ({kind})",
                                  self.client.remove_member(victim, timeout=_CHANGE_TIMEOUT))
        finally:
            self.changing -= 1
        if not ok:
            return
        if was_leader:
            self.sim.hit("leader removed itself")
        if was_witness:
            self.sim.hit("witness removed")
        if was_down:
            self.sim.hit("down member removed")

    async def transfer(self) -> None:
        """Hand leadership to a random full voter (maybe while a change is in flight)."""
        conf = self.conf()
        if conf is None:
            return
        full, _ = conf
        targets = sorted(i for i in full if i in self.sim.members and self.sim.members[i].up)
        if not targets:
            return
        target = self.rng.choice(targets)
        if self.changing:
            self.sim.hit("transfer during a configuration change")
        if await self._call(f"transfer to {target}",
                            self.client.transfer_leader(target, timeout=_CHANGE_TIMEOUT)):
            self.sim.hit("leadership transferred")

    async def change_and_transfer(self) -> None:
        """A configuration change and a transfer at the same time."""
        change = asyncio.ensure_future(self.step(random_kind=True))
        await asyncio.sleep(self.rng.uniform(0.0, 0.05))
        await self.transfer()
        await change

    async def two_changes(self) -> None:
        """Two configuration changes at once: one of them should be refused as pending."""
        first = asyncio.ensure_future(self.step(random_kind=True))
        await asyncio.sleep(self.rng.uniform(0.0, 0.02))
        await self.step(random_kind=True)
        await first

    async def snapshot(self) -> None:
        """Ask a member to compact its log now."""
        ups = [m for m in self.sim.live() if not m.removed]
        if not ups:
            return
        m = self.rng.choice(ups)
        await self._call(f"snapshot on {m.id}",
                         self.client.snapshot(endpoint=m.address, timeout=_CHANGE_TIMEOUT))

    async def snapshot_on(self, m: Member) -> None:
        """Ask member ``m`` to compact its log now."""
        await self._call(f"snapshot on {m.id}",
                         self.client.snapshot(endpoint=m.address, timeout=_CHANGE_TIMEOUT))

    async def step(self, random_kind: bool = False) -> None:
        """One step of the journey (or a random change)."""
        self.changing += 1
        try:
            await self._step(random_kind)
        finally:
            self.changing -= 1

    async def _step(self, random_kind: bool) -> None:
        conf = self.conf()
        if conf is None:
            return
        full, witnesses = conf
        if random_kind:
            r = self.rng.random()
            if r < 0.4 and len(self.sim.members) < 9:
                await self.add(witness=not witnesses and self.rng.random() < 0.3)
            else:
                await self.remove()
            return
        if len(full) >= 3:
            await self.remove("leader" if self.rng.random() < 0.5 else "follower")
        elif len(full) == 2 and not witnesses:
            await self.add(witness=not self.bottomed)
        elif len(full) == 2:
            await (self.remove("witness") if self.bottomed else
                   self.remove("leader" if self.rng.random() < 0.5 else "follower"))
        elif len(full) == 1 and witnesses:
            self.bottomed = True
            await self.add(witness=False)
        else:
            await self.add(witness=False)

    # --- following the configuration -------------------------------------------------------

    def reconcile(self) -> None:
        """Stop members that left the leader's configuration."""
        conf = self.conf()
        if conf is None:
            return
        full, witnesses = conf
        members = full | witnesses
        now = self.sim.loop.time()
        for m in list(self.sim.members.values()):
            if m.id in members:
                self.seen_in_conf.add(m.id)
                continue
            if m.removed:
                continue
            if m.id not in self.seen_in_conf and now - self.added_at.get(m.id, -1e9) < 15.0:
                continue  # still joining
            leader = self.sim.current_leader()
            if leader is None or leader.node is None or leader.node._applier is None:
                return
            if leader.witness:
                return  # a witness applies only configuration entries: not its view
            if m.id in leader.node._applier.conf.learners:
                continue
            d = leader.node._driver
            if d is not None and m.id in d.raft.conf_state.voters | d.raft.conf_state.learners:
                # Appended, not yet applied: the leader counts it. An addition
                # waiting for its new member to catch up is not a removal;
                # killing that member left {leader, it} without a quorum for
                # good (seed 5269).
                continue
            m.removed = True
            self.sim.trace("removed", f"member {m.id} left the configuration: stopping it")
            m.kill(power_loss=False, why="removed from the cluster")

    async def close(self) -> None:
        """Close the operator client."""
        if self._client is not None:
            await self.sim.loop.create_task(self._client.close(), context=self.ctx)

    async def remove_down(self) -> None:
        """Kill a follower, then remove it while it is down."""
        conf = self.conf()
        leader = self.sim.current_leader()
        if conf is None or leader is None:
            return
        full, witnesses = conf
        victims = [i for i in sorted(full | witnesses) if i != leader.id and i in self.sim.members]
        if not victims:
            return
        m = self.sim.members[self.rng.choice(victims)]
        m.kill(power_loss=False, why="killed before its removal")
        await self.remove("down")
        if not m.removed and self.restart_later is not None:
            self.restart_later(m)
