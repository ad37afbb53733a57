"""One simulated cluster: the loop, the network, the members, the checks and the counters.

:class:`Sim` owns everything of one seed and the hooks the parts report
through: ``hit`` (coverage rows), ``trace`` (the event log printed for a
failing seed), ``violate`` (the first broken rule stops the run), the
per-tick poll (election safety, configuration shapes) and the checks made
when a member answers a client.
"""

from __future__ import annotations

import contextvars
import random
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from nexus_raft.consensus.core.messages import Role
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.boot import bootstrap_log
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage.simulated import CrashReport
from nexus_raft.storage.store import Store
from tests.sim.checker import Violation
from tests.sim.trace import Trace
from tests.sim_node.known import Facts
from tests.sim_node.kvnet import SimKVStub
from tests.sim_node.loop import VirtualLoop
from tests.sim_node.member import Member
from tests.sim_node.net import Endpoint, Profile, SimNetwork
from tests.sim_node.observe import Observer
from tests.sim_node.params import Params
from tests.sim_node.situations import SITUATIONS

__all__ = ["Sim"]

# Functions whose frames on the stack name the operation a crash interrupted.
_CRASH_SITES: list[tuple[Any, str]] = [
    (KVStateMachine.restore.__code__, "restore interrupted by a crash"),
    (LogStore.create_snapshot.__code__, "crash inside a compaction"),
    (Store.drop_tree.__code__, "crash inside drop_tree"),
    (RaftNode._open.__code__, "crash while recovering at start"),
]
_SAVE = LogStore.save.__code__
_NOT_READY = {Driver.compact.__code__, bootstrap_log.__code__}  # saves that are not a Ready's


def crash_sites() -> list[str]:
    """The coverage rows naming what the current call stack is in the middle of."""
    found: list[str] = []
    f = sys._getframe(1)
    in_save = save_snap = other = False
    while f is not None:
        code = f.f_code
        if code is _SAVE:
            in_save = True
            save_snap = f.f_locals.get("snapshot") is not None
        elif code in _NOT_READY:
            other = True
        else:
            for site, row in _CRASH_SITES:
                if code is site and row not in found:
                    found.append(row)
        f = f.f_back  # type: ignore[assignment]
    if in_save and not other:
        # A Ready's save runs inline or in the executor (then no driver frame is
        # on the stack); the snapshot one follows the state machine's restore.
        found.append("crash between restore and its log save" if save_snap
                     else "crash inside a Ready save")
    return found


class Sim:
    """Everything of one seed (see the module docstring)."""

    def __init__(self, params: Params, trace: Trace, tmp: str) -> None:
        self.params = params
        self.loop = VirtualLoop()
        self.rng = random.Random(params.seed)
        self.stats: Counter[str] = Counter()
        self.coverage: Counter[str] = Counter()
        self.net = SimNetwork(self.loop, random.Random(self.rng.getrandbits(64)), self.stats)
        self.net.profile = Profile(loss=params.loss, dup=params.dup, slow=params.slow)
        self.net.hit = self.hit
        self.obs = Observer(self.stats, self.hit, self.violate)
        self.net.vote_sent = self.obs.vote_sent
        self.members: dict[int, Member] = {}
        self.initial_peers: dict[int, str] = {}
        self.initial_witnesses: set[int] = set()
        self.tmp = tmp
        self.violation: Violation | None = None
        self._trace = trace
        self.leader: tuple[int, int] = (0, 0)  # (member, term) of the newest leader seen
        self.on_new_leader: list[Callable[[int, int], None]] = []
        self.shrunk = False
        self.after_crash: Callable[[Member], None] | None = None
        self.facts = Facts(refusals=self.net.refusals)
        self._last_conf: object = None
        self._last_shape: tuple[int, int] = (0, 0)
        # The simulator's own tasks run here (no process: never killed or paused).
        self.root = contextvars.copy_context()

    # --- reporting -------------------------------------------------------------------------

    @property
    def tick(self) -> int:
        """Virtual time in Raft ticks."""
        return int(self.loop.time() / self.params.tick_interval)

    def hit(self, row: str) -> None:
        """Count a coverage row."""
        SITUATIONS.hit(self.coverage, row)

    def trace(self, kind: str, text: str) -> None:
        """Record an event for the failure report."""
        self._trace.ev(self.tick, kind, text)

    def violate(self, v: Violation) -> None:
        """The first broken rule ends the seed."""
        if self.violation is None:
            self.violation = v
            self.trace("VIOLATION", str(v))
            self.loop.stop()

    def crash_situation(self, member: Member, report: CrashReport) -> None:
        """Name what an armed crash interrupted (called inside the interrupted write)."""
        rows = crash_sites()
        for row in rows:
            self.hit(row)
        restore = {"restore interrupted by a crash", "crash between restore and its log save"}
        if restore & set(rows):
            self.facts.restore_crash.add(member.id)
        if report.lost:
            self.facts.power_lost.add(member.id)
        self.check_holes(member.id, report.holes)

    def check_holes(self, member: int, holes: int) -> None:
        """A power cut must lose state machine writes only as a suffix (the disk counts
        the writes it kept after losing an earlier one whose effect none restores)."""
        if holes:
            self.violate(Violation(
                "state machine durable as a prefix",
                f"a power cut kept {holes} of member {member}'s state machine writes after "
                "losing an earlier one: its state machine has a hole"))

    # --- members -------------------------------------------------------------------------

    def add_member(self, node_id: int, *, witness: bool, join: bool) -> Member:
        """A new machine (not started)."""
        m = Member(self, node_id, witness=witness, join=join)
        self.members[node_id] = m
        return m

    def live(self) -> list[Member]:
        """Members whose node runs, in id order."""
        return [m for _, m in sorted(self.members.items()) if m.up]

    def current_leader(self) -> Member | None:
        """The up member that leads in the highest term, if any."""
        best: Member | None = None
        best_term = -1
        for m in self.live():
            d = m.node._driver if m.node is not None else None
            if d is not None and d.role is Role.LEADER and d.term > best_term and not m.paused:
                best, best_term = m, d.term
        return best

    def stub_factory(self, src: int) -> Callable[[str], SimKVStub]:
        """What a client on host ``src`` passes as ``Client(stub_factory=...)``."""
        return lambda target: SimKVStub(self.net, src, target, self._before_serve,
                                        self._after_serve)

    # --- checks when a member answers a client ---------------------------------------------

    def _before_serve(self, ep: Endpoint, method: str, request: Any) -> Any:
        m = self.members.get(ep.host)
        if m is None or m.node is None:
            return None
        return m.node.leader_id

    def _after_serve(self, ep: Endpoint, method: str, request: Any, response: Any,
                     leader_before: Any) -> None:
        if response.error.code != 0:
            return
        reads = False
        if method == "Batch":
            reads = any(op.WhichOneof("op") == "get" and not op.get.serializable
                        for op in request.ops)
        elif method in ("Get", "ListKeys", "Prefixes"):
            reads = not request.serializable
        if not reads:
            return
        m = self.members.get(ep.host)
        if m is None or m.node is None or m.sm is None:
            return
        node, sm = m.node, m.sm
        log = node._log_store
        snap = log.snapshot().index if log is not None else 0
        if sm.applied_index() < snap:
            self.violate(Violation(
                "read from a state machine behind the log",
                f"member {m.id} answered a {method} read from a state machine at "
                f"{sm.applied_index()} while its log's snapshot is at {snap}"))
            return
        if not node.is_leader:
            self.hit("linearizable read served by a follower")
        if leader_before and node.leader_id and leader_before != node.leader_id:
            self.hit("ReadIndex answered across a leader change")

    # --- the per-tick poll -------------------------------------------------------------

    def failed(self, m: Member) -> Violation | None:
        """A node that stopped on its own (its driver or apply task died)."""
        node = m.node
        d = node._driver if node is not None else None
        if node is None or d is None:
            return None
        applier = node._applier
        failed = d.failed or (applier.failed if applier is not None else None)
        failure = getattr(node, "failure", None)
        if failed is None and failure is None:
            return None
        where = "raft driver" if d.failed is not None else "apply task"
        tb = "".join(traceback.format_exception(failed, limit=-4)).strip() if failed else ""
        return Violation("node failed", f"member {m.id}'s {where} stopped: {failed!r}"
                                        f"{f' ({failure})' if failure else ''}\n{tb}")

    def poll(self) -> None:
        """Election safety, answer pairing, new leaders and configuration shapes (once per tick)."""
        if self.net.mismatched:
            self.violate(Violation("answer pairing", self.net.mismatched[0]))
            return
        leader: Member | None = None
        for m in self.live():
            d = m.node._driver if m.node is not None else None
            if d is None:
                continue
            failed = self.failed(m)
            if failed is not None:
                self.violate(failed)
                return
            if d.role is not Role.LEADER:
                continue
            try:
                self.obs.core.leader_elected(m.id, d.term)
            except Violation as v:
                self.violate(v)
                return
            if leader is None or d.term > self.leader[1]:
                leader = m
        if leader is not None and leader.node is not None:
            term = leader.node._driver.term if leader.node._driver else 0
            if (leader.id, term) != self.leader and term > self.leader[1]:
                self.leader = (leader.id, term)
                self.trace("leader", f"member {leader.id} leads term {term}")
                for cb in list(self.on_new_leader):
                    cb(leader.id, term)
            self._shape(leader)

    def _shape(self, leader: Member) -> None:
        applier = leader.node._applier if leader.node is not None else None
        if applier is None:
            return
        conf = applier.conf
        if conf is self._last_conf or leader.id not in conf.voters:
            return
        self._last_conf = conf
        full = conf.voters - conf.witnesses
        shape = (len(full), len(conf.witnesses))
        if shape == self._last_shape:
            return
        self._last_shape = shape
        self.trace("conf", f"full voters {sorted(full)} witnesses {sorted(conf.witnesses)} "
                           f"learners {sorted(conf.learners)}")
        if len(full) == 2 and not conf.witnesses:
            self.hit("two full voters")
            self.shrunk = True
        if len(full) == 1 and conf.witnesses:
            self.hit("one full voter and a witness")
            self.shrunk = True
        if len(full) >= 3 and self.shrunk:
            self.hit("grew back to three full voters")
            self.shrunk = False
