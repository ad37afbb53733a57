"""One simulated machine: an address, a disk and a data directory; its processes come and go.

A :class:`Member` starts the real thing in a fresh simulated process: a
``RaftNode`` (the driver, durable log and applier) with an
:class:`~tests.sim_node.observe.ObservedKV` state machine (or none, for a
witness), on the member's :class:`~nexus_raft.storage.simulated.SimulatedDisk`,
the simulated transport, a :class:`~tests.sim_node.loop.SimExecutor` and a
seeded random source, with the real ``KVService`` (over ``WitnessFrontend``
for a witness) answering clients on the same address.

Ending a process: :meth:`Member.kill` is ``kill -9`` (optionally with a
power loss), an armed disk crash ends it from inside a storage operation,
and :meth:`Member.stop` is a clean shutdown. Every way leaves the disk, and
only the disk, to the next process.
"""

from __future__ import annotations

import asyncio
import random
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import MemberRemoved
from nexus_raft.kv.service.kv import KVService
from nexus_raft.storage.simulated import CrashReport, SimulatedCrash, SimulatedDisk
from nexus_raft.witness.service import WitnessFrontend
from tests.sim.checker import Violation
from tests.sim_node.loop import Process, SimExecutor
from tests.sim_node.observe import ObservedKV
from tests.sim_node.transport import SimTransport

if TYPE_CHECKING:
    from tests.sim_node.sim import Sim

__all__ = ["CLUSTER_ID", "Member"]

CLUSTER_ID = "sim-cluster"
WALL_EPOCH = 1_750_000_000.0  # the simulated wall clock starts here (seconds)


def _executor_delay(rng: random.Random) -> float:
    # Most blocking calls take an fsync's time; now and then the disk stalls.
    if rng.random() < 0.02:
        return rng.uniform(0.01, 0.1)
    return rng.uniform(0.0001, 0.002)


class Member:
    """A machine of the simulated cluster (see the module docstring)."""

    def __init__(self, sim: Sim, node_id: int, *, witness: bool, join: bool) -> None:
        self.sim = sim
        self.id = node_id
        self.witness = witness
        self.join = join
        self.address = sim.net.add_host(node_id)
        p = sim.params
        self.disk = SimulatedDisk(
            rng=random.Random(sim.rng.getrandbits(64)),
            write_buffer_bytes=p.write_buffer_bytes,
            flush_after=(1, p.flush_after),
        )
        self.disk.observer = sim.obs.tap(node_id)
        self.disk.on_crash = self._disk_crashed
        self.disk.watched = sim.obs.sm_key(node_id)
        self.data_dir = Path(sim.tmp) / f"n{node_id}"
        self.process: Process | None = None
        self.node: RaftNode | None = None
        self.sm: ObservedKV | None = None
        self.transport: SimTransport | None = None
        self.clock_offset = 0.0
        self.incarnation = 0
        self.removed = False
        self.booted: asyncio.Future[bool] | None = None
        self.restored_since_join = 0
        self.last_crash: CrashReport | None = None

    # --- state ---------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """A process runs and its node finished starting."""
        return (
            self.process is not None
            and self.process.alive
            and self.node is not None
            and self.booted is not None
            and self.booted.done()
            and not self.booted.cancelled()  # its starter was cancelled while it waited
            and not self.booted.exception()
            and self.booted.result()
        )

    @property
    def running(self) -> bool:
        """A process exists and was not killed (it may still be starting or paused)."""
        return self.process is not None and self.process.alive

    def wall(self) -> float:
        """This machine's wall clock (seconds); clock jumps move it."""
        return WALL_EPOCH + self.sim.loop.time() + self.clock_offset

    def config(self) -> NodeConfig:
        """The member's NodeConfig (joiners know the current members, not the first ones)."""
        p = self.sim.params
        if self.join:
            peers = {m.id: m.address for m in self.sim.members.values() if not m.removed}
            peers[self.id] = self.address
            witnesses = frozenset({self.id} if self.witness else set())
        else:
            peers = dict(self.sim.initial_peers)
            witnesses = frozenset(self.sim.initial_witnesses)
        return NodeConfig(
            id=self.id, listen=self.address, peers=peers, data_dir=self.data_dir,
            witnesses=witnesses, cluster_id=CLUSTER_ID, join=self.join,
            tick_interval=p.tick_interval, election_ticks=p.election_ticks,
            heartbeat_ticks=p.heartbeat_ticks, snapshot_every=p.snapshot_every,
            keep_entries=p.keep_entries,
        )

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> bool:
        """Start a new process; True once its node runs (False if it died while starting)."""
        sim = self.sim
        loop = sim.loop
        if self.running:
            raise AssertionError(f"member {self.id} is already running")
        self.incarnation += 1
        self.disk.reboot()
        proc = Process(f"n{self.id}.{self.incarnation}")
        ctx = loop.context_of(proc)
        sm = None
        if not self.witness:
            sm = ObservedKV(sim.obs, self.id, self._restored, session_ttl_ms=sim.params.ttl_ms,
                            snapshot_chunk_bytes=sim.params.chunk_bytes)
        transport = SimTransport(sim.net, self.id)
        node = RaftNode(
            self.config(), sm, transport=transport,
            executor=SimExecutor(loop, random.Random(sim.rng.getrandbits(64)), _executor_delay),
            rng=random.Random(sim.rng.getrandbits(64)), storage=self.disk,
        )
        served: Any = WitnessFrontend(node) if self.witness else node
        transport.kv = KVService(served, cluster_id=CLUSTER_ID, clock=self.wall)
        self.process, self.node, self.sm, self.transport = proc, node, sm, transport
        self.booted = loop.create_future()
        loop.create_task(self._boot(node, self.booted), context=ctx)
        sim.trace("start", f"member {self.id} (process {proc.name})")
        # Shielded: the member's boot goes on when whoever started it stops waiting.
        return await asyncio.shield(self.booted)

    async def _boot(self, node: RaftNode, booted: asyncio.Future[bool]) -> None:
        try:
            await node.start()
        except SimulatedCrash:
            return  # _disk_crashed settled ``booted``
        except MemberRemoved as exc:
            # Its data directory recorded its removal: a removed member
            # refuses to serve again, as a removed nexus-node does (exit 3).
            self.removed = True
            self.sim.trace("removed", f"member {self.id} refuses to start: {exc}")
            if not booted.done():
                booted.set_result(False)
            return
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc, limit=-6)).strip()
            self.sim.violate(Violation("member failed to start",
                                       f"member {self.id}: {exc!r}\n{tb}"))
            if not booted.done():
                booted.set_result(False)
            return
        log = node._log_store
        assert log is not None
        snap = log.snapshot().index
        last = log.last_index()

        def term_at(index: int) -> int | None:
            return log.term(index) if snap < index <= last else None

        try:
            self.sim.obs.restarted(self.id, log.hard_state, snap, term_at)
            self.sim.obs.reload_tap(self.id, ((i, log.term(i)) for i in range(snap + 1, last + 1)))
        except BaseException as exc:
            if not booted.done():
                booted.set_exception(exc)
            return
        if not booted.done():
            booted.set_result(True)
        halt = await node.wait_halted()
        # The node stopped itself (removed from the cluster): the process
        # exits, as nexus-node does with status 3.
        if self.node is node:
            self.removed = True
            self.sim.trace("halted", f"member {self.id} stopped itself: {halt.reason}")
            self._down(None)

    def _restored(self, index: int) -> None:
        self.sim.trace("restore", f"member {self.id} installed a snapshot at {index}")
        if self.join and self.incarnation == 1:
            self.restored_since_join += 1
            self.sim.hit("snapshot sent to a member that was just added")
        self.sim.hit("snapshot installed by a member")

    def _disk_crashed(self, report: CrashReport) -> None:
        """An armed crash fired inside a storage operation of this member."""
        power = " with a power loss" if report.power_loss else ""
        self.sim.trace("crash", f"member {self.id} crashed {report.label} after write "
                                f"{report.writes}{power}")
        self.sim.crash_situation(self, report)
        self._down(report)
        if self.sim.after_crash is not None:
            self.sim.after_crash(self)

    def kill(self, *, power_loss: bool, why: str = "killed") -> None:
        """kill -9 (and maybe the power): the process dies between two callbacks."""
        if not self.running:
            if power_loss:
                lost = self.disk.power_fail()
                self.sim.trace("power", f"member {self.id} (down) lost power: {lost} writes lost")
                if lost:
                    self.sim.hit("power loss lost unsynced writes")
                    self.sim.facts.power_lost.add(self.id)
                self.sim.check_holes(self.id, self.disk.last_holes)
            return
        report = self.disk.crash(power_loss=power_loss, label=why)
        self.sim.trace("kill", f"member {self.id} {why}"
                               f"{f', power loss lost {report.lost} writes' if power_loss else ''}")
        if power_loss and report.lost:
            self.sim.hit("power loss lost unsynced writes")
            self.sim.facts.power_lost.add(self.id)
        self.sim.check_holes(self.id, report.holes)
        self._down(report)

    def _down(self, report: CrashReport | None) -> None:
        self.last_crash = report
        proc = self.process
        if proc is not None:
            self.sim.loop.kill(proc)
        if self.transport is not None and self.transport.endpoint is not None:
            self.sim.net.down(self.transport.endpoint)
        self.sim.obs.crashed(self.id)
        if self.booted is not None and not self.booted.done():
            self.booted.set_result(False)
        self.node = None
        self.sm = None

    async def stop(self) -> None:
        """A clean shutdown (what SIGTERM does), then the process exits."""
        node, proc = self.node, self.process
        if node is None or proc is None or not proc.alive:
            return
        self.sim.loop.resume(proc)
        done = self.sim.loop.create_future()

        async def shut() -> None:
            try:
                await node.shutdown()
            finally:
                if not done.done():
                    done.set_result(None)

        self.sim.loop.create_task(shut(), context=self.sim.loop.context_of(proc))
        waited = asyncio.ensure_future(done)
        timer = self.sim.loop.call_later(30.0, lambda: done.done() or done.set_result(None))
        await waited
        timer.cancel()
        self.sim.trace("stop", f"member {self.id} shut down cleanly")
        self._down(None)

    def pause(self) -> None:
        """SIGSTOP."""
        if self.process is not None:
            self.sim.loop.pause(self.process)

    def resume(self) -> None:
        """SIGCONT."""
        if self.process is not None:
            self.sim.loop.resume(self.process)

    @property
    def paused(self) -> bool:
        """Whether the process is stopped."""
        return self.process is not None and self.process.state == "paused"
