"""Run one seed of the node simulator and say what happened.

:func:`run_seed` builds a :class:`~tests.sim_node.sim.Sim`, runs the scenario
on its virtual loop and returns a :class:`SeedResult`: the first broken rule
(if any), the trace, the coverage counts and the cost (ticks, virtual and
wall seconds). Logging from the code under test is kept at WARNING; errors
it logs are counted (and traced), and exceptions nobody retrieved are
counted too, so a run that "passed" while the node complained is visible.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nexus_raft.storage.simulated import SimulatedCrash
from tests.sim.checker import Violation
from tests.sim.trace import Trace
from tests.sim_node.known import classify
from tests.sim_node.loop import Deadlock
from tests.sim_node.params import Params, params_for
from tests.sim_node.scenario import run_scenario
from tests.sim_node.sim import Sim

__all__ = ["SeedResult", "run_seed"]


@dataclass
class SeedResult:
    """The outcome of one seed."""

    seed: int
    params: Params
    violation: Violation | None
    ticks: int
    sim_seconds: float
    wall_seconds: float
    cpu_seconds: float
    callbacks: int
    trace: Trace
    stats: Counter[str] = field(default_factory=Counter)
    coverage: Counter[str] = field(default_factory=Counter)
    known: str | None = None  # the known bug the violation is an instance of (known.KNOWN)


# What RaftNode logs when it starts with a state machine behind its log's snapshot.
_BEHIND = "node %d: state machine at %d is behind the log snapshot %d"


class _LogCounter(logging.Handler):
    """Counts (and traces) what the code under test logs at WARNING and above."""

    def __init__(self, sim: Sim) -> None:
        super().__init__(logging.WARNING)
        self.sim = sim

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and isinstance(record.exc_info[1], SimulatedCrash):
            return
        if record.msg == _BEHIND and isinstance(record.args, tuple) and len(record.args) == 3:
            member, sm_applied, _ = record.args
            (self.sim.facts.behind if sm_applied else self.sim.facts.empty_behind).add(member)
        self.sim.stats[f"log {record.levelname.lower()}: {record.msg}"[:110]] += 1
        if record.levelno >= logging.ERROR:
            try:
                text = record.getMessage()
            except Exception:  # a bad format string must not break the run
                text = str(record.msg)
            self.sim.trace("log", f"{record.levelname} {record.name}: {text[:200]}")


def _tick_filter(sim: Sim) -> Any:
    def stamp(record: logging.LogRecord) -> bool:
        record.tick = sim.tick
        return True

    return stamp


def _exception_handler(sim: Sim) -> Any:
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, (SimulatedCrash, asyncio.CancelledError)) or exc is None:
            return
        sim.stats[f"unretrieved exception: {type(exc).__name__}"] += 1

    return handle


def run_seed(seed: int, trace: Trace | None = None, *, verbose_logs: bool = False,
             params: Params | None = None) -> SeedResult:
    """Run seed ``seed`` to its verdict (see the module docstring); ``params``
    overrides what the seed would choose (the test suite runs gentle seeds)."""
    params = params or params_for(seed)
    trace = trace if trace is not None else Trace(keep=80)
    tmp = tempfile.mkdtemp(prefix=f"nx-simnode-{seed}-")
    sim = Sim(params, trace, tmp)
    loop = sim.loop
    loop.set_exception_handler(_exception_handler(sim))
    root = logging.getLogger("nexus_raft")
    handler = _LogCounter(sim)
    old_level = root.level
    root.setLevel(logging.DEBUG if verbose_logs else logging.WARNING)
    root.addHandler(handler)
    printer: logging.Handler | None = None
    if verbose_logs:
        printer = logging.StreamHandler(sys.stderr)
        printer.setFormatter(logging.Formatter("t=%(tick)-5s node-log   %(name)s: %(message)s"))
        printer.addFilter(_tick_filter(sim))
        root.addHandler(printer)
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda args: None  # finalizers of killed processes' coroutines
    gc.collect()
    violation: Violation | None = None
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sim.loop.create_task(run_scenario(sim), context=sim.root))
        except Violation as v:
            violation = v
        except Deadlock as exc:
            violation = Violation("deadlock", str(exc))
        except Exception as exc:  # the simulator itself, or the code under test, blew up
            if sim.violation is None:
                tb = "".join(traceback.format_exception(exc, limit=-6)).strip()
                violation = Violation("unexpected exception", f"{exc!r}\n{tb}")
        except RuntimeError:
            if sim.violation is None:
                raise
        if sim.violation is not None:
            violation = sim.violation
    finally:
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        asyncio.set_event_loop(None)
        root.removeHandler(handler)
        if printer is not None:
            root.removeHandler(printer)
        root.setLevel(old_level)
        shutil.rmtree(tmp, ignore_errors=True)
    result = _result(sim, violation, wall, cpu, trace)
    # Finalise the coroutines left (the processes' tasks) while the loop is
    # still open, quietly (see VirtualLoop.end).
    del sim
    loop.end()
    gc.collect()
    sys.unraisablehook = old_hook
    return result


def _result(sim: Sim, violation: Violation | None, wall: float, cpu: float,
            trace: Trace) -> SeedResult:
    loop = sim.loop
    stats = sim.stats
    for m in sim.members.values():
        stats["disk writes"] += m.disk.writes
        stats["disk log rotations"] += m.disk.rotations
    stats["loop callbacks"] += loop.callbacks
    if violation is not None and sim.violation is None:
        trace.ev(sim.tick, "VIOLATION", f"{violation.invariant}: {violation.detail}")
    known = classify(violation, sim.facts) if violation is not None else None
    return SeedResult(sim.params.seed, sim.params, violation, sim.tick, loop.time(), wall, cpu,
                      loop.callbacks, trace, stats, sim.coverage, known)
