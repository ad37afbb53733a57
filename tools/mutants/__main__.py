"""``python -m tools.mutants`` (``make mutants``): run the mutation check and print its table.

    python -m tools.mutants [--seeds 500] [--only NAME ...] [--check CHECK ...] [--list]
                            [--markdown]

First the unmutated copy must pass every check (else every mutant would look
caught); then each mutant is applied alone to a fresh scratch copy and the
checks run in order (core simulator with the CI seed budget, the node
simulator when present, the fast tests) until one fails. The table lists
each mutant, CAUGHT or SURVIVED, by what (check, invariant or test, seed)
and the time to catch. Progress goes to stderr, the table to stdout. Exit
status 1 when a mutant survived (a hole in the verification), 2 on bad
arguments or a stale mutant (its search text no longer matches).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tools.mutants.catalog import MUTANTS, Mutant
from tools.mutants.run import (
    Outcome,
    StaleMutant,
    apply,
    checks,
    ci_node_seeds,
    make_scratch,
    run_check,
    run_mutant,
    scratch_imports_itself,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"tools.mutants: {message}\n")
        raise SystemExit(2)


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def table(outcomes: Sequence[Outcome], *, markdown: bool) -> str:
    """The result table (plain text, or Markdown for the README)."""
    rows = [
        (o.mutant.name, o.mutant.origin, "caught" if o.caught else "SURVIVED", o.by,
         f"{o.seconds:.0f}s")
        for o in outcomes
    ]
    head = ("mutant", "origin", "result", "caught by (check: invariant or test, seed)",
            "time to catch")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    caught = sum(o.caught for o in outcomes)
    out.append(f"mutants: {caught}/{len(outcomes)} caught")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    ap = _Parser(prog="python -m tools.mutants", description="mutation check")
    ap.add_argument("--seeds", type=int, default=500, help="core simulator seeds (CI's budget)")
    ap.add_argument("--node-seeds", type=int, default=ci_node_seeds(),
                    help="node simulator seeds (CI's budget: the Makefile's CI_NODE_SEEDS)")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8))
    ap.add_argument("--only", action="append", default=[], help="run only this mutant (repeat)")
    ap.add_argument("--check", action="append", default=[],
                    help="run only this check (repeat): core sim, node sim, fast tests")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not check that the unmutated copy passes first")
    args = ap.parse_args(argv)
    if args.seeds <= 0 or args.jobs <= 0:
        ap.error("--seeds and --jobs must be positive")
    if args.list:
        for m in MUTANTS:
            print(f"{m.name}: {m.what} [{m.origin}]")
        return 0
    chosen: list[Mutant] = list(MUTANTS)
    if args.only:
        known = {m.name for m in MUTANTS}
        bad = [n for n in args.only if n not in known]
        if bad:
            ap.error(f"unknown mutant(s): {', '.join(bad)} (see --list)")
        chosen = [m for m in MUTANTS if m.name in args.only]
    all_checks = checks(args.seeds, args.jobs, args.node_seeds)
    if args.check:
        bad = sorted(set(args.check) - {c.name for c in all_checks})
        if bad:
            ap.error(f"unknown check(s): {', '.join(bad)} "
                     f"(known: {', '.join(c.name for c in all_checks)})")
        all_checks = [c for c in all_checks if c.name in args.check]
    with tempfile.TemporaryDirectory(prefix="nexus-mutants-") as tmp:
        base = Path(tmp)
        # Every mutant must apply before anything runs: a stale one fails at once.
        for m in chosen:
            probe = make_scratch(base)
            try:
                apply(m, probe)
            except StaleMutant as e:
                _log(f"tools.mutants: stale mutant: {e}")
                return 2
        probe = make_scratch(base)
        if not scratch_imports_itself(probe):
            _log("tools.mutants: the scratch copy does not import itself (PYTHONPATH shadowing "
                 "failed); refusing to run")
            return 2
        if not args.skip_baseline:
            _log("baseline (no mutant):")
            for check in all_checks:
                got = run_check(check, probe)
                if got is None:
                    _log(f"  {check.name}: not present, skipped")
                    continue
                failed, detail, dt = got
                _log(f"  {check.name}: {'FAILED ' + detail if failed else 'passed'} ({dt:.0f}s)")
                if failed:
                    _log("tools.mutants: the unmutated code fails a check; fix that first")
                    return 1
        outcomes: list[Outcome] = []
        t0 = time.perf_counter()
        for i, m in enumerate(chosen, 1):
            _log(f"[{i}/{len(chosen)}] {m.name}: {m.what}")
            outcomes.append(run_mutant(m, base, all_checks, _log))
    sys.stdout.write(table(outcomes, markdown=args.markdown))
    _log(f"tools.mutants: {len(outcomes)} mutants in {time.perf_counter() - t0:.0f}s")
    return 0 if all(o.caught for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
