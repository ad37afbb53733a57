"""``python -m tests.sim``: run seeds of the cluster simulator.

    python -m tests.sim --seeds N [--start S] [--jobs J] [--require-coverage] [--fail-fast]
    python -m tests.sim --seed 1234 --trace                # replay one seed, every event

Progress and violation reports (seed, invariant, trace excerpt, replay
command) go to stderr, then the coverage table (``tests/sim/situations.py``)
and the ticks and simulated time of the run (one tick stands for
``TICK_SECONDS``, the node's default tick interval). stdout gets exactly one
line, ``sim: N seeds, V violations``. The exit status is 1 when V > 0, or
with ``--require-coverage`` when a situation of the table was never reached;
2 on bad arguments. ``--fail-fast`` stops at the first violation (the
mutation check uses it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import NoReturn

from tests.sim.params import LONG_TICKS
from tests.sim.runner import SeedResult, run_seed
from tests.sim.situations import SITUATIONS
from tests.sim.trace import Trace


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"tests.sim: {message}\n")
        raise SystemExit(2)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = _Parser(prog="python -m tests.sim", description="seeded Raft cluster simulator")
    ap.add_argument("--seeds", type=int, default=None, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, default=None, help="run exactly this one seed")
    ap.add_argument("--trace", action="store_true", help="print every event (with --seed)")
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (0: automatic)")
    ap.add_argument("--require-coverage", action="store_true",
                    help="fail when a situation of the coverage table was never reached")
    ap.add_argument("--fail-fast", action="store_true", help="stop at the first violation")
    args = ap.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        ap.error("give --seed or --seeds, not both")
    if args.seed is None and args.seeds is None:
        args.seeds = 100
    if args.seeds is not None and args.seeds < 0:
        ap.error("--seeds must be >= 0")
    if args.start < 0 or (args.seed is not None and args.seed < 0):
        ap.error("seeds are non-negative integers")
    if args.trace and args.seed is None:
        ap.error("--trace needs --seed (one seed at a time)")
    if args.jobs < 0:
        ap.error("--jobs must be >= 0")
    return args


def report(res: SeedResult) -> str:
    """The violation report of one seed: seed, invariant, trace excerpt, replay command."""
    v = res.violation
    assert v is not None
    return (
        f"VIOLATION seed={res.seed} invariant={v.invariant!r} at tick {res.ticks}\n"
        f"  {v.detail}\n"
        f"  scenario={res.params.scenario} voters={res.params.full_voters}"
        f"{'+witness' if res.params.witness else ''} learners={res.params.learners}\n"
        f"  last events:\n{res.trace.excerpt()}\n"
        f"  replay: python -m tests.sim --seed {res.seed} --trace\n"
    )


_Result = tuple[int, "str | None", int, Counter[str]]


def _one(seed: int) -> _Result:
    res = run_seed(seed)
    return seed, (report(res) if res.violation is not None else None), res.ticks, res.stats


def _results(seeds: range, jobs: int) -> Iterator[_Result]:
    if jobs <= 1:
        for s in seeds:
            yield _one(s)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_one, seeds, chunksize=16)


TICK_SECONDS = 0.02  # simulated time of one tick (NodeConfig.tick_interval's default)


def _coverage(stats: Counter[str]) -> str:
    """One stderr line of the run's other statistics (not rows of the coverage table)."""
    items = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k not in SITUATIONS)
    return f"statistics: {items}\n"


def _sim_time(ticks: int) -> str:
    secs = ticks * TICK_SECONDS
    return f"{secs:.0f}s" if secs < 3600 else f"{secs / 3600:.1f}h"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parse(argv)
    if args.seed is not None:
        res = run_seed(args.seed, Trace(full=args.trace, out=sys.stderr))
        if res.violation is not None:
            sys.stderr.write(report(res))
        else:
            sys.stderr.write(
                f"seed {args.seed}: ok, {res.ticks} ticks, commit {res.commit}, "
                f"{res.messages} messages\n"
            )
        sys.stderr.write(_coverage(res.stats))
        SITUATIONS.report(res.stats, sys.stderr, seeds=1)
        sys.stderr.write(f"sim: {res.ticks} ticks, {_sim_time(res.ticks)} simulated\n")
        bad = int(res.violation is not None)
        print(f"sim: 1 seeds, {bad} violations")
        return 1 if bad else 0
    seeds = range(args.start, args.start + args.seeds)
    jobs = args.jobs or (1 if len(seeds) < 200 else min(os.cpu_count() or 1, 8))
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    last = t0
    bad = 0
    ticks = 0
    long_ticks = 0
    longs = 0
    longest = 0
    total: Counter[str] = Counter()
    for done, (_seed, rep, t, stats) in enumerate(_results(seeds, jobs), start=1):
        ticks += t
        longest = max(longest, t)
        if t >= LONG_TICKS:
            longs += 1
            long_ticks += t
        total.update(stats)
        if rep is not None:
            bad += 1
            sys.stderr.write(rep)
            if args.fail_fast:
                break
        now = time.perf_counter()
        if now - last >= 5.0:
            last = now
            sys.stderr.write(
                f"sim: {done}/{len(seeds)} seeds, {bad} violations, "
                f"{done / (now - t0):.0f} seeds/s\n"
            )
    dt = time.perf_counter() - t0
    sys.stderr.write(_coverage(total))
    missing = SITUATIONS.report(total, sys.stderr, seeds=len(seeds))
    short = len(seeds) - longs
    sys.stderr.write(
        f"sim: {ticks} ticks = {_sim_time(ticks)} simulated at {TICK_SECONDS * 1000:.0f} ms/tick; "
        f"{short} short seeds ({(ticks - long_ticks) / max(short, 1):.0f} ticks each), "
        f"{longs} long seeds ({long_ticks / max(longs, 1):.0f} ticks = "
        f"{_sim_time(long_ticks // max(longs, 1))} each), longest {longest} ticks\n"
    )
    cpu = time.process_time() - cpu0
    per = f", {len(seeds) / cpu:.0f} seeds per CPU-second" if jobs == 1 and cpu else ""
    sys.stderr.write(
        f"sim: {len(seeds)} seeds in {dt:.1f}s ({len(seeds) / dt if dt else 0:.0f} seeds/s wall"
        f"{per}, {jobs} job(s), {ticks} ticks)\n"
    )
    print(f"sim: {len(seeds)} seeds, {bad} violations")
    if missing and args.require_coverage and not bad:
        sys.stderr.write(f"sim: FAIL: {len(missing)} situation(s) never reached\n")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
