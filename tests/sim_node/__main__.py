"""``python -m tests.sim_node``: run seeds of the whole-node simulator.

    python -m tests.sim_node --seeds N [--start S] [--jobs J]   # seeds S..S+N-1
    python -m tests.sim_node --seed 1234 --trace                # replay one seed, every event

Progress, per-seed violation reports (seed, rule, parameters, the trace's
last events and the command that replays the seed) and the coverage table
go to stderr; stdout gets one line, ``sim_node: N seeds, V violations``.
Exit status: 1 when a seed broke a rule or a coverage row stayed at zero
(``--allow-missing`` turns the latter off, for a handful of seeds), 2 on bad
arguments. Runs re-execute themselves with ``PYTHONHASHSEED=0``, so a seed
replays the same way in any process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import NoReturn

from tests.sim.trace import Trace
from tests.sim_node.known import KNOWN
from tests.sim_node.runner import SeedResult, run_seed
from tests.sim_node.situations import SITUATIONS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"tests.sim_node: {message}\n")
        raise SystemExit(2)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = _Parser(prog="python -m tests.sim_node", description="whole-node Raft simulator")
    ap.add_argument("--seeds", type=int, default=None, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--seed", type=int, default=None, help="run exactly this one seed")
    ap.add_argument("--trace", action="store_true", help="print every event (with --seed)")
    ap.add_argument("--logs", action="store_true", help="also print the nodes' own logs")
    ap.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per core)")
    ap.add_argument("--skip", type=str, default="",
                    help="comma-separated seeds to leave out (known bugs being fixed)")
    ap.add_argument("--allow-missing", action="store_true",
                    help="do not fail when a coverage row stays at zero")
    ap.add_argument("--fail-fast", action="store_true",
                    help="stop at the first violation (the mutation check)")
    ap.add_argument("--tolerate", type=str, default="",
                    help="comma-separated known bugs (keys of tests/sim_node/known.py) whose "
                         "seeds are reported as KNOWN instead of failing the run")
    args = ap.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        ap.error("give --seed or --seeds, not both")
    if args.seed is None and args.seeds is None:
        args.seeds = 20
    if args.seeds is not None and args.seeds < 0:
        ap.error("--seeds must be >= 0")
    if args.start < 0 or (args.seed is not None and args.seed < 0):
        ap.error("seeds are non-negative integers")
    if (args.trace or args.logs) and args.seed is None:
        ap.error("--trace and --logs need --seed (one seed at a time)")
    if args.jobs < 0:
        ap.error("--jobs must be >= 0")
    try:
        args.skip = {int(s) for s in args.skip.split(",") if s.strip()}
    except ValueError:
        ap.error("--skip takes comma-separated seed numbers")
    args.tolerate = {k.strip() for k in args.tolerate.split(",") if k.strip()}
    unknown = args.tolerate - set(KNOWN)
    if unknown:
        ap.error(f"--tolerate: no known bug {sorted(unknown)[0]!r} (known: {', '.join(KNOWN)})")
    return args


def replay_command(seed: int) -> str:
    """The command that replays ``seed`` with every event printed."""
    return f"PYTHONHASHSEED=0 python -m tests.sim_node --seed {seed} --trace"


def report(res: SeedResult) -> str:
    """The violation report of one seed."""
    v = res.violation
    assert v is not None
    if res.known is not None:
        return (
            f"KNOWN seed={res.seed} bug={res.known} rule={v.invariant!r} at tick {res.ticks}\n"
            f"  {KNOWN[res.known]}\n"
            f"  {v.detail.splitlines()[0][:300]}\n"
            f"  replay: {replay_command(res.seed)}\n"
        )
    return (
        f"VIOLATION seed={res.seed} rule={v.invariant!r} at tick {res.ticks}\n"
        f"  {v.detail}\n"
        f"  seed: {res.params.describe()}\n"
        f"  last events:\n{res.trace.excerpt(60)}\n"
        f"  replay: {replay_command(res.seed)}\n"
    )


@dataclass
class _Summary:
    seed: int
    report: str | None
    ticks: int
    sim_seconds: float
    wall: float
    cpu: float
    long: bool
    stats: Counter[str]
    coverage: Counter[str]
    known: str | None


def _one(seed: int) -> _Summary:
    res = run_seed(seed)
    return _Summary(seed, report(res) if res.violation is not None else None, res.ticks,
                    res.sim_seconds, res.wall_seconds, res.cpu_seconds, res.params.long,
                    res.stats, res.coverage, res.known)


def _results(seeds: list[int], jobs: int) -> Generator[_Summary, None, None]:
    if jobs <= 1:
        for s in seeds:
            yield _one(s)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, maxtasksperchild=50) as pool:
        yield from pool.imap_unordered(_one, seeds, chunksize=1)


def _one_seed(args: argparse.Namespace) -> int:
    res = run_seed(args.seed, Trace(full=args.trace, out=sys.stderr), verbose_logs=args.logs)
    if res.violation is not None:
        sys.stderr.write(report(res))
        if res.known is not None:
            sys.stderr.write(f"{res.trace.excerpt(60)}\n")
    else:
        sys.stderr.write(
            f"seed {args.seed}: ok, {res.params.describe()}\n"
            f"  {res.ticks} ticks, {res.sim_seconds:.1f} simulated s in {res.wall_seconds:.1f} "
            f"wall s, {res.cpu_seconds:.1f} CPU s "
            f"({res.sim_seconds / max(res.cpu_seconds, 1e-9):.1f} simulated s per CPU s)\n"
        )
    hit = ", ".join(f"{k}={v}" for k, v in sorted(res.coverage.items()))
    sys.stderr.write(f"coverage: {hit}\n")
    bad = int(res.violation is not None and res.known not in args.tolerate)
    print(f"sim_node: 1 seeds, {bad} violations")
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Same hashing in every process, so a seed replays identically anywhere.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim_node", *sys.argv[1:]])
    args = _parse(argv)
    # Coroutines of killed processes are finalised whenever the garbage
    # collector gets to them, even after their loop closed: say nothing.
    sys.unraisablehook = lambda _: None
    warnings.simplefilter("ignore", RuntimeWarning)
    if args.seed is not None:
        return _one_seed(args)
    seeds = [s for s in range(args.start, args.start + args.seeds) if s not in args.skip]
    jobs = args.jobs or min(os.cpu_count() or 1, 8)
    t0 = time.perf_counter()
    last = t0
    bad = 0
    known: Counter[str] = Counter()
    ticks = 0
    sim_s = 0.0
    wall_s = 0.0
    cpu_s = 0.0
    long_runs: list[tuple[int, int, float, float]] = []
    coverage: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    results = _results(seeds, jobs)
    for done, r in enumerate(results, start=1):
        ticks += r.ticks
        sim_s += r.sim_seconds
        wall_s += r.wall
        cpu_s += r.cpu
        coverage.update(r.coverage)
        stats.update(r.stats)
        if r.long:
            long_runs.append((r.seed, r.ticks, r.sim_seconds, r.cpu))
        if r.report is not None:
            if r.known is not None and r.known in args.tolerate:
                known[r.known] += 1
            else:
                bad += 1
            sys.stderr.write(r.report)
            if bad and args.fail_fast:
                results.close()  # ends the worker pool
                break
        now = time.perf_counter()
        if now - last >= 10.0:
            last = now
            sys.stderr.write(f"sim_node: {done}/{len(seeds)} seeds, {bad} violations, "
                             f"{now - t0:.0f}s\n")
    dt = time.perf_counter() - t0
    missing = SITUATIONS.report(coverage, sys.stderr, seeds=len(seeds))
    for seed, t, s, w in sorted(long_runs):
        sys.stderr.write(f"long seed {seed}: {t} ticks, {s:.0f} simulated s, {w:.1f} CPU s\n")
    if args.skip:
        sys.stderr.write(f"skipped seeds: {sorted(args.skip)}\n")
    for key, n in sorted(known.items()):
        sys.stderr.write(f"tolerated: {n} seed(s) ran into known bug {key}: {KNOWN[key]}\n")
    speed = sim_s / cpu_s if cpu_s else 0.0
    sys.stderr.write(
        f"sim_node: {len(seeds)} seeds in {dt:.1f}s wall with {jobs} job(s): {ticks} ticks, "
        f"{sim_s:.0f} simulated s in {cpu_s:.0f} CPU s ({speed:.1f} simulated s per CPU s)\n"
    )
    tolerated = f" (+{sum(known.values())} known-bug seeds tolerated)" if known else ""
    print(f"sim_node: {len(seeds)} seeds, {bad} violations{tolerated}")
    if missing and not args.allow_missing:
        sys.stderr.write(f"sim_node: FAILED: coverage rows never reached: {', '.join(missing)}\n")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
