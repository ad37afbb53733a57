"""One seeded run: the fault phase (or a scripted scenario), the heal, the liveness check.

``run_seed(seed)`` is deterministic: the seed alone fixes the cluster shape,
every fault and every random choice of the cores, so a failing seed replays
exactly with ``python -m tests.sim --seed S --trace``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from nexus_raft.consensus.core.messages import Accepted
from tests.sim.checker import Violation
from tests.sim.cluster import Cluster
from tests.sim.node import SimNode
from tests.sim.ops import Ops
from tests.sim.params import (
    LONG_TICKS,
    SCENARIO_LONG,
    SCENARIO_WITNESS_STALL,
    SimParams,
    draw,
)
from tests.sim.situations import SITUATIONS
from tests.sim.trace import Trace


@dataclass(slots=True)
class SeedResult:
    """How one seed ended."""

    seed: int
    params: SimParams
    violation: Violation | None
    ticks: int
    commit: int
    messages: int
    trace: Trace
    stats: Counter[str] = field(default_factory=Counter)


# CPU-time budget of one seed (the longest long seed takes ~20 s); more means the
# core (or we) loop forever. CPU time, not wall time: a loaded machine must not
# turn a slow seed into a false "hang".
HANG_SECONDS = 120.0


class _Hang(Exception):
    """The seed ran past HANG_SECONDS."""


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


def run_seed(
    seed: int, trace: Trace | None = None, *, hang_seconds: float = HANG_SECONDS
) -> SeedResult:
    """Run ``seed`` to the end or to its first violation.

    A seed that used ``hang_seconds`` of CPU time (POSIX, main thread only)
    is stopped and reported as a "hang" violation with its trace.
    """
    watchdog = (
        hang_seconds > 0
        and hasattr(signal, "setitimer")
        and hasattr(signal, "SIGPROF")
        and threading.current_thread() is threading.main_thread()
    )
    if watchdog:
        old = signal.signal(signal.SIGPROF, _alarm)
        signal.setitimer(signal.ITIMER_PROF, hang_seconds)
    try:
        with package_log_level(trace is not None and trace.full):
            return _run_seed(seed, trace, hang_seconds)
    finally:
        if watchdog:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)


@contextmanager
def package_log_level(full_trace: bool) -> Iterator[None]:
    """Quiet the ``nexus_raft`` logger for one seed, then restore its level.

    The cores log expected oddities (stale snapshots, ...) as warnings: bulk
    runs keep them out (ERROR), a full trace shows them (WARNING). The level
    is put back however the seed ends, so an in-process test that runs after
    a simulator test still sees the package's warnings (test order must not
    matter).
    """
    logger = logging.getLogger("nexus_raft")
    saved = logger.level
    logger.setLevel(logging.WARNING if full_trace else logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(saved)


def _run_seed(seed: int, trace: Trace | None, hang_seconds: float) -> SeedResult:
    rng = random.Random(seed)
    params = draw(seed, rng)
    tr = trace if trace is not None else Trace()
    tr.ev(0, "params", repr(params))
    violation: Violation | None = None
    c: Cluster | None = None
    try:
        c = Cluster(params, rng, tr)
        ops = Ops(c)
        if params.scenario == SCENARIO_WITNESS_STALL:
            witness_stall(c, ops)
        elif params.scenario == SCENARIO_LONG:
            long_run(c, ops)
        else:
            for _ in range(params.fault_ticks):
                ops.inject()
                c.tick()
        heal_and_check_liveness(c, ops)
    except Violation as v:
        violation = v
    except _Hang:
        where = traceback.format_exc(limit=-15)  # the innermost frames: where it spun
        violation = Violation("hang", f"seed used {hang_seconds:.0f}s of CPU time\n{where}")
    except Exception as e:  # a crash of the core (or the harness) is a finding too
        violation = Violation("exception", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    if violation is not None:
        tr.ev(c.now if c else 0, "VIOLATION", str(violation))
    if c is not None:
        c.stats["messages sent"] += c.net.sent
        c.stats["messages dropped"] += c.net.dropped
        c.stats["messages duplicated"] += c.net.duplicated
    return SeedResult(
        seed=seed,
        params=params,
        violation=violation,
        ticks=c.now if c else 0,
        commit=c.check.commit_index if c else 0,
        messages=c.net.sent if c else 0,
        trace=tr,
        stats=c.stats if c else Counter(),
    )


def long_run(c: Cluster, ops: Ops) -> None:
    """Phases of faults and membership changes, each ended by a heal and a liveness check,
    until the run has lasted ``LONG_TICKS`` ticks.

    Each phase redraws the fault rates (a quiet phase, a lossy one, a churning
    one, ...) from the seed's generator, so one seed strings together what
    short seeds only do one at a time: a change, a crash inside it, a leader
    change and a recovery, again and again.
    """
    base = c.p
    phases = 0
    while c.now < LONG_TICKS:
        phase = draw(base.seed, c.rng)
        p = dataclasses.replace(
            phase,
            scenario=base.scenario,
            full_voters=base.full_voters,
            witness=base.witness,
            learners=base.learners,
            election_tick=base.election_tick,
            heartbeat_tick=base.heartbeat_tick,
            pre_vote=base.pre_vote,
            check_quorum=base.check_quorum,
            max_entries_per_msg=base.max_entries_per_msg,
            max_size_per_msg=base.max_size_per_msg,
            max_inflight_msgs=base.max_inflight_msgs,
            reorder=base.reorder,
            defer_ready=base.defer_ready,
            p_churn=max(phase.p_churn, 0.01),
        )
        c.p = p
        c.net.set_faults(loss=p.loss, dup=p.dup, max_delay=p.max_delay)
        c.crash_unpersisted = p.crash_unpersisted
        ops.churned = 0
        for _ in range(c.rng.randint(1000, 3000)):
            ops.inject()
            c.tick()
        heal_and_check_liveness(c, ops)
        phases += 1
    c.p = base
    c.net.set_faults(loss=base.loss, dup=base.dup, max_delay=base.max_delay)
    c.crash_unpersisted = base.crash_unpersisted
    c.stats["long seed phases"] += phases
    SITUATIONS.hit(c.stats, "long seed")


def heal_and_check_liveness(c: Cluster, ops: Ops) -> None:
    """Stop every fault; a full-member leader must then commit a new entry in time."""
    c.net.heal()
    c.net.set_faults(loss=0.0, dup=0.0, max_delay=min(c.net.max_delay, 1))
    c.crash_unpersisted = 0.0
    ops.restart_all()
    c.trace.ev(c.now, "heal", "faults stop; liveness check starts")
    leader = commit_marker(c, ops, c.p.liveness_ticks, "after the heal")
    c.stats["liveness checked"] += 1
    # Nothing acknowledged may be lost: the leader applied past every commit.
    for key, index in c.key_latest.items():
        got = leader.kv.written_at(key)
        if got != index:
            raise Violation(
                "state machine safety",
                f"leader n{leader.id} holds {key!r} from index {got}; newest committed is {index}",
            )


def commit_marker(c: Cluster, ops: Ops, bound: int, when: str) -> SimNode:
    """Tick until a full-member leader has applied a fresh entry; returns that leader.

    ``bound`` ticks without replication progress fail the check; while the
    leader's followers' match indexes still move (a member far behind being
    caught up, which with one message in flight of a few entries takes a
    while: seed 8279), the deadline moves with them, up to ten bounds in all.
    """
    deadline = c.now + bound
    cap = c.now + 10 * bound
    matched = -1  # the leader's sum of match indexes at the last progress
    marker: tuple[int, int, int] | None = None  # (leader, index, term)
    while c.now < deadline:
        c.tick()
        leader = c.leader()
        if leader is not None and leader.raft is not None:
            total = sum(pr.match for pr in leader.raft.prs.values())
            if total > matched:
                if matched >= 0:
                    deadline = min(cap, max(deadline, c.now + bound))
                matched = total
        if leader is None or leader.witness:
            continue
        if marker is not None and marker[0] == leader.id and leader.term == marker[2]:
            got = c.check.applied.get(marker[1])
            if leader.applied >= marker[1] and got is not None and got[0] == marker[2]:
                c.trace.ev(c.now, "live", f"n{leader.id} committed {marker[1]} {when}")
                return leader
            continue
        accepted = ops.propose(1, leader)
        if accepted:
            marker = (leader.id, accepted[0].index, accepted[0].term)
    lead = c.leader()
    raise Violation(
        "liveness",
        f"no full-member leader committed a new entry within {bound} ticks {when} "
        f"(leader {lead!r}; nodes {list(c.nodes.values())})",
    )


def _until(c: Cluster, bound: int, cond: Callable[[], bool], what: str) -> None:
    deadline = c.now + bound
    while c.now < deadline:
        c.tick()
        if cond():
            return
    raise Violation("witness stall", f"{what}: not within {bound} ticks")


def _metadata_tail(c: Cluster, ops: Ops, L: SimNode, F: SimNode, wit: SimNode,
                   target: int) -> None:
    """Issue 10 item 4's shape: F returns and catches up (its match moves, so it is
    healthy and the witness is sent metadata only again), new writes leave the
    witness a metadata-only tail, and the leader is to die before F has caught up.
    Stops as soon as that holds (or when it cannot happen any more)."""
    c.net.heal()
    c.trace.ev(c.now, "heal", f"n{F.id} catches up while writes go on")
    deadline = c.now + c.p.liveness_ticks
    written = 0
    while c.now < deadline and ops.leader_is(L) and F.applied < target:
        if written < 6:
            written += len(ops.propose(1, L))
        c.tick()
        wr, st = wit.raft, wit.storage
        last = st.last_index()
        if (wr is not None and F.applied < target and last > wr.log.committed
                and last >= st.first_index() and st.entries(last, last + 1)[0].data is None):
            SITUATIONS.hit(c.stats, "witness metadata-only tail at a leader crash")
            c.trace.ev(c.now, "scenario", f"witness n{wit.id} ends with metadata only; "
                       f"n{F.id} at {F.applied} of {target}: the leader dies now")
            return


def witness_stall(c: Cluster, ops: Ops) -> None:
    """The 2 full + 1 witness stall case of issues 4 and 6, scripted.

    1. A full member L leads; the other full member F is cut off while writes
       commit with L's and the witness's payloads.
    2. (Half the seeds) the witness crashes and restarts: it must keep its
       term and vote.
    3. L crashes; F comes back. F lacks committed entries, so only the
       witness can win an election: it must lead, bring F up to date and hand
       leadership over. Every acknowledged write must then be on F.
    """
    p = c.p
    bound = p.liveness_ticks
    # The script's own crashes are the faults; random ones resume afterwards.
    c.crash_unpersisted = 0.0
    full = sorted(n.id for n in c.nodes.values() if not n.witness)
    wit = next(n for n in c.nodes.values() if n.witness)
    leader = commit_marker(c, ops, bound, "at start")
    lid = leader.id
    fid = next(i for i in full if i != lid)
    L, F = c.nodes[lid], c.nodes[fid]
    c.net.isolate(fid, list(c.nodes))
    c.trace.ev(c.now, "isolate", f"n{fid} (the lagging full member)")
    acked: list[Accepted] = []
    writes = c.rng.randint(3, 12)
    deadline = c.now + bound
    while len(acked) < writes and c.now < deadline:
        if ops.leader_is(L):
            acked.extend(ops.propose(c.rng.randint(1, 3), L))
        c.tick()
    target = max((a.index for a in acked), default=0)
    _until(c, bound, lambda: not L.alive or L.applied >= target or not ops.leader_is(L),
           "writes with the witness commit")
    if not ops.leader_is(L) or L.applied < target:
        # L lost leadership on its own (a lossy seed): the script no longer applies.
        c.trace.ev(c.now, "scenario", "leader changed early; falling back to random faults")
        c.stats["stall case skipped (leader lost early)"] += 1
        c.crash_unpersisted = p.crash_unpersisted
        return
    committed = [a for a in acked if c.check.applied.get(a.index, (0,))[0] == a.term]
    if c.rng.random() < 0.5:
        c.crash(wit, "(witness restart)")
        c.restart(wit)
        c.stats["stall case: witness restarted"] += 1
    if c.rng.random() < 0.5:
        _metadata_tail(c, ops, L, F, wit, target)
    # The witness counts as having led for the recovery when it leads at the
    # crash or is elected in the crash's tick or later (terms cannot tell:
    # a campaign begun in the crash's tick wins a term some node already
    # held, seed 4131; an election in that tick just before it, seed 13374).
    crash_tick = c.now
    witness_leading = ops.leader_is(wit)
    c.crash(L, "(the leader)")
    c.net.heal()
    # The recovery is about the witness's rules, not about surviving a storm:
    # keep some loss and reordering, but delays well inside an election timeout.
    net = c.net
    net.set_faults(loss=min(net.loss, 0.05), dup=net.dup, max_delay=min(net.max_delay, 1))
    c.trace.ev(c.now, "heal", f"n{fid} returns; the witness must lead and hand over")
    # If F lacks committed entries that only the witness (and L) hold, the
    # witness must lead to bring it up to date (after a catch-up F may need
    # nobody). Judged once nothing L sent is still travelling to F: appends on
    # the wire when L died still arrive, and may bring F up to date.
    lacked: list[bool] = []

    def recovered() -> bool:
        if not lacked and not c.net.carries(L.id, F.id):
            lacked.append(F.storage.last_index() < target)
        return F.alive and ops.leader_is(F) and F.applied >= target

    _until(c, bound, recovered, f"full member n{fid} leads and applied {target}")
    f_lacks = bool(lacked) and lacked[0]
    elections = zip(c.witness_led, c.witness_led_at, strict=True)
    led = witness_leading or any(w == wit.id and at >= crash_tick for (_, w), at in elections)
    if f_lacks and not led:
        raise Violation("witness stall", f"witness n{wit.id} never led after the crash")
    for a in committed:
        got = c.check.applied.get(a.index)
        if got is None or got[0] != a.term or F.applied < a.index:
            raise Violation("witness stall", f"acked write {a} missing on n{fid}")
    c.stats["stall case: witness led and handed over"] += 1
    if f_lacks:
        SITUATIONS.hit(c.stats, "stall recovered through witness leader")
    net.set_faults(loss=p.loss, dup=p.dup, max_delay=p.max_delay)
    if any(t > crash_tick and w == wit.id and to == fid for t, w, to in c.witness_handovers):
        c.stats["stall case: handover by TimeoutNow"] += 1
    c.restart(L)
    c.crash_unpersisted = p.crash_unpersisted
    # Use the remaining budget for random faults on the 2+1 cluster.
    for _ in range(p.fault_ticks // 2):
        ops.inject()
        c.tick()

