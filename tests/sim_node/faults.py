"""Process, disk, network and clock faults, each undone after a while.

Every fault is chosen and timed by the seed's random source. Faults that
must end (a partition, a pause, a down member) schedule their own undoing,
and :meth:`Faults.heal` undoes everything at once before the final checks.
Crashes come three ways: ``kill -9`` between two callbacks (optionally with
a power cut), a crash armed on the disk that fires inside a chosen
multi-step operation (a Ready's save, a snapshot restore, the log save
after it, a compaction, a ``drop_tree``), and a clean shutdown.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage.store import Store
from tests.sim_node.member import Member
from tests.sim_node.workload import CLIENT_HOST

if TYPE_CHECKING:
    from tests.sim_node.sim import Sim

__all__ = ["ARMED", "Faults"]


def _inside(*codes: object, label: str, snapshot_save: bool = False) -> Callable[[], str | None]:
    """A disk-crash predicate: true while one of ``codes`` is on the stack."""
    wanted = set(codes)

    def check() -> str | None:
        f = sys._getframe(2)
        while f is not None:
            if f.f_code in wanted and (
                not snapshot_save or f.f_locals.get("snapshot") is not None
            ):
                return label
            f = f.f_back  # type: ignore[assignment]
        return None

    return check


ARMED: dict[str, Callable[[], str | None] | None] = {
    "any write": None,
    "Ready save": _inside(Driver._handle_ready.__code__, label="inside a Ready save"),
    "restore": _inside(KVStateMachine.restore.__code__, label="inside a snapshot restore"),
    "log save after restore": _inside(LogStore.save.__code__, label="saving a restored snapshot",
                                      snapshot_save=True),
    "compaction": _inside(LogStore.create_snapshot.__code__, label="inside a compaction"),
    "drop_tree": _inside(Store.drop_tree.__code__, label="inside drop_tree"),
}


class Faults:
    """The fault menu of one seed (see the module docstring)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.down_until: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.isolate_next_leader = False
        sim.on_new_leader.append(self._new_leader)

    def later(self, delay: float, action: Callable[[], object]) -> None:
        """Run ``action`` (a callable, maybe returning an awaitable) after ``delay``."""

        async def run() -> None:
            await asyncio.sleep(delay)
            out = action()
            if asyncio.iscoroutine(out):
                await out

        task = self.sim.loop.create_task(run(), context=self.sim.root)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pick(self, members: list[Member]) -> Member | None:
        return self.rng.choice(members) if members else None

    def candidates(self) -> list[Member]:
        """Members that may take a fault now (running, not removed)."""
        return [m for _, m in sorted(self.sim.members.items()) if m.running and not m.removed]

    # --- processes ---------------------------------------------------------------------

    def crash(self) -> None:
        """kill -9 a member (sometimes with a power cut); restart it later."""
        m = self._pick(self.candidates())
        if m is None:
            return
        power = self.rng.random() < 0.35
        m.kill(power_loss=power, why="killed (kill -9)" + (" in a power cut" if power else ""))
        self.restart_later(m)

    def restart_later(self, m: Member, lo: float = 0.05, hi: float = 3.0) -> None:
        """Start ``m`` again after a random delay (unless it was removed meanwhile)."""
        self.later(self.rng.uniform(lo, hi), lambda: self.restart(m))

    async def restart(self, m: Member) -> None:
        """Start ``m`` if it is down and still a member."""
        if m.running or m.removed:
            return
        if self.rng.random() < 0.1:
            m.kill(power_loss=True)  # the machine lost power while it was down
        ok = await m.start()
        if ok:
            self.sim.hit("member killed and restarted")
        elif not m.running:
            self.restart_later(m)  # it died again while starting (an armed crash)

    def arm(self, where: str | None = None) -> Member | None:
        """Arm a crash on a member's disk inside ``where`` (random when None)."""
        m = self._pick([m for m in self.candidates() if m.up])
        if m is None:
            return None
        where = where or self.rng.choice(sorted(ARMED))
        m.disk.arm(after=self.rng.randint(0, 4), when=ARMED[where], label=where,
                   power_loss=self.rng.random() < 0.3)
        self.sim.trace("arm", f"member {m.id}: crash {where}")
        # Disarm if it did not fire (the operation never happened), so crashes stay rare.
        self.later(self.rng.uniform(2.0, 10.0), m.disk.disarm)
        return m

    def after_crash(self, m: Member) -> None:
        """An armed crash ended ``m``: bring it back later (maybe crashing its recovery)."""
        if self.rng.random() < 0.4:
            m.disk.arm(after=self.rng.randint(0, 3), label="while recovering",
                       power_loss=self.rng.random() < 0.3)
        self.restart_later(m)

    async def clean_restart(self) -> None:
        """A clean shutdown, then a new process."""
        m = self._pick([m for m in self.candidates() if m.up])
        if m is None:
            return
        await m.stop()
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))
        if not m.removed and await m.start():
            self.sim.hit("member shut down cleanly and restarted")

    def pause(self) -> None:
        """SIGSTOP a member, SIGCONT it later."""
        m = self._pick([m for m in self.candidates() if m.up and not m.paused])
        if m is None:
            return
        p = self.sim.params
        length = self.rng.uniform(0.05, 2.0)
        m.pause()
        self.sim.trace("pause", f"member {m.id} for {length:.2f}s")
        if length > 2 * p.election_ticks * p.tick_interval:
            self.sim.hit("member paused past an election timeout")
        self.later(length, m.resume)

    # --- clocks ------------------------------------------------------------------------------

    def clock_jump(self) -> None:
        """A member's wall clock jumps forward or back (NTP step, VM restore)."""
        m = self._pick(self.candidates())
        if m is None:
            return
        step = self.rng.choice((1.0, 60.0, 3600.0, 7200.0)) * self.rng.uniform(0.5, 1.5)
        if self.rng.random() < 0.5:
            step = -step
            self.sim.hit("clock jumped back")
        else:
            self.sim.hit("clock jumped forward")
        m.clock_offset += step
        self.sim.trace("clock", f"member {m.id} wall clock jumps {step:+.0f}s")

    # --- network -----------------------------------------------------------------------------

    def hosts(self) -> list[int]:
        return [m.id for _, m in sorted(self.sim.members.items()) if not m.removed]

    def partition(self) -> None:
        """Split the members into two groups (clients land on either side)."""
        hosts = self.hosts()
        if len(hosts) < 2:
            return
        self.rng.shuffle(hosts)
        cut = self.rng.randint(1, len(hosts) - 1)
        a, b = hosts[:cut], hosts[cut:]
        for c in range(self.sim.params.clients):
            (a if self.rng.random() < 0.5 else b).append(CLIENT_HOST + c)
        self._split(a, b, self.rng.uniform(0.3, 5.0), "partition")

    def _split(self, a: list[int], b: list[int], length: float, what: str) -> None:
        net = self.sim.net
        for x in a:
            for y in b:
                net.set_cut(x, y, True)
                net.set_cut(y, x, True)
        self.sim.trace(what, f"{sorted(a)} | {sorted(b)} for {length:.2f}s")

        def heal() -> None:
            for x in a:
                for y in b:
                    net.set_cut(x, y, False)
                    net.set_cut(y, x, False)
            self.sim.trace("heal", f"{sorted(a)} | {sorted(b)}")
            self.sim.hit("partition healed")

        self.later(length, heal)

    def isolate_leader(self) -> None:
        """Cut the current leader off from everyone."""
        leader = self.sim.current_leader()
        if leader is None:
            return
        others = [h for h in self.hosts() if h != leader.id]
        others += [CLIENT_HOST + c for c in range(self.sim.params.clients)]
        self._split([leader.id], others, self.rng.uniform(0.3, 4.0), "isolate leader")

    def _new_leader(self, member: int, term: int) -> None:
        if not self.isolate_next_leader:
            return
        self.isolate_next_leader = False
        others = [h for h in self.hosts() if h != member]
        self.sim.hit("fresh leader isolated before its first entry committed")
        self._split([member], others, self.rng.uniform(0.3, 3.0), "isolate fresh leader")

    def one_way(self) -> None:
        """Cut one direction of one link."""
        hosts = self.hosts()
        if len(hosts) < 2:
            return
        x, y = self.rng.sample(hosts, 2)
        net = self.sim.net
        net.set_cut(x, y, True)
        self.sim.hit("one-way cut")
        self.sim.trace("one-way", f"{x} -> {y} cut")
        self.later(self.rng.uniform(0.3, 4.0), lambda: net.set_cut(x, y, False))

    def lose_answers(self) -> None:
        """Drop a member's answers to one client for a while (the client retries)."""
        hosts = self.hosts()
        if not hosts:
            return
        client = CLIENT_HOST + self.rng.randrange(self.sim.params.clients)
        net = self.sim.net
        for h in hosts:
            net.set_cut(h, client, True)
        self.sim.hit("client answers lost")
        self.sim.trace("answers", f"members -> client {client} cut")

        def heal() -> None:
            for h in hosts:
                net.set_cut(h, client, False)

        self.later(self.rng.uniform(0.2, 2.5), heal)

    def weather(self) -> None:
        """Change the network's loss, duplication and slow-message rates."""
        p = self.sim.net.profile
        p.loss = self.rng.choice((0.0, 0.0, 0.005, 0.02, 0.05))
        p.dup = self.rng.choice((0.0, 0.01, 0.05))
        p.slow = self.rng.choice((0.0, 0.02, 0.1))
        self.sim.trace("weather", f"loss {p.loss} dup {p.dup} slow {p.slow}")

    # --- the end -------------------------------------------------------------------------------

    async def heal(self) -> None:
        """Undo every fault: links, weather, pauses, armed crashes; restart down members."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.isolate_next_leader = False
        net = self.sim.net
        net.heal()
        p = net.profile
        p.loss = p.dup = p.slow = 0.0
        for m in self.sim.members.values():
            m.disk.disarm()
            if m.paused:
                m.resume()
        for _, m in sorted(self.sim.members.items()):
            if not m.running and not m.removed:
                await m.start()
