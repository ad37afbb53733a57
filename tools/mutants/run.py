"""Apply one mutant to a scratch copy and run the checks against it.

The scratch copy holds ``nexus_raft/``, ``tests/`` and ``pyproject.toml``;
every check runs with that directory as its working directory and first on
``PYTHONPATH``, so the mutated package shadows the editable install (checked
before the first mutant: :func:`scratch_imports_itself`). Process tests are
left out: they start ``nexus-node`` from the virtualenv, which would run the
unmutated code.

A check catches a mutant when it exits non-zero with a recognisable failure
(a simulator violation line, a failing test id); a run that times out counts
as caught by a hang. Checks run in order and stop at the first catch, so the
table says which check caught it first and how long that took.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
_VIOLATION = re.compile(r"VIOLATION seed=(\d+) (?:invariant|rule)='([^']+)'")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


class StaleMutant(Exception):
    """A search string no longer matches exactly once: the code moved."""


@dataclass(frozen=True)
class Check:
    """One verification step run against a mutated copy."""

    name: str
    argv: Callable[[Path, Mutant | None], list[str] | None]  # None: not available here
    timeout: float


@dataclass(frozen=True)
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    caught: bool
    by: str  # check and detail ("core sim: payload copies, seed 54"), or why not
    seconds: float


def makefile_default(name: str) -> str:
    """The Makefile's ``NAME ?= value`` (its first such assignment, as make reads it)."""
    pattern = rf"^{re.escape(name)} \?= *(.*)$"
    m = re.search(pattern, (ROOT / "Makefile").read_text(), re.MULTILINE)
    return m.group(1).strip() if m else ""


def _node_tolerate() -> str:
    """The Makefile's NODE_TOLERATE: known bugs still being fixed, tolerated as in `make sim`."""
    return makefile_default("NODE_TOLERATE")


def ci_node_seeds() -> int:
    """The node simulator seeds CI runs (the Makefile's CI_NODE_SEEDS)."""
    value = makefile_default("CI_NODE_SEEDS")
    return int(value) if value.isdigit() else 60


def _sim_violation(out: str) -> str | None:
    m = _VIOLATION.search(out)
    return f"{m.group(2)}, seed {m.group(1)}" if m else None


def _failed_test(out: str) -> str | None:
    m = _FAILED.search(out)
    return m.group(1) if m else None


def checks(seeds: int, jobs: int, node_seeds: int) -> list[Check]:
    """The checks, in the order they run: core simulator, node simulator, fast tests."""
    py = sys.executable

    def core(_: Path, m: Mutant | None) -> list[str]:
        return [py, "-m", "tests.sim", "--seeds", str(seeds), "--fail-fast", "--jobs", str(jobs)]

    def node(d: Path, m: Mutant | None) -> list[str] | None:
        if not (d / "tests" / "sim_node" / "__main__.py").exists():
            return None
        # CI's seeds need not reach every row here: only violations count. Known
        # bugs still being fixed are tolerated as in `make sim`.
        return [py, "-m", "tests.sim_node", "--seeds", str(node_seeds), "--allow-missing",
                "--fail-fast", "--jobs", str(jobs), "--tolerate", _node_tolerate()]

    def fast(_: Path, m: Mutant | None) -> list[str]:
        # The mutant's own test paths (its area's unit tests, the fix's regression
        # test), or for the baseline every one of them.
        paths = sorted({p for x in MUTANTS for p in x.tests}) if m is None else list(m.tests)
        return [py, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *paths]

    return [
        Check("core sim", core, 1800.0),
        Check("node sim", node, 3600.0),
        Check("fast tests", fast, 1800.0),
    ]


def make_scratch(base: Path) -> Path:
    """A fresh copy of the package and the tests under ``base``."""
    dst = Path(tempfile.mkdtemp(prefix="nexus-mutant-", dir=base))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
    for name in ("nexus_raft", "tests"):
        shutil.copytree(ROOT / name, dst / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def apply(mutant: Mutant, scratch: Path) -> None:
    """Apply every search/replace pair of ``mutant`` to ``scratch`` (each must match once)."""
    for edit in mutant.edits:
        path = scratch / edit.file
        if not path.exists():
            raise StaleMutant(f"{mutant.name}: {edit.file} does not exist")
        text = path.read_text()
        n = text.count(edit.old)
        if n != 1:
            raise StaleMutant(
                f"{mutant.name}: {edit.file}: the search text occurs {n} times, not once:\n"
                f"{edit.old}"
            )
        path.write_text(text.replace(edit.old, edit.new))


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch) + (os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env
                                        else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def scratch_imports_itself(scratch: Path) -> bool:
    """Whether ``import nexus_raft`` in the copy loads the copy (not the installed package)."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import nexus_raft, tests; print(nexus_raft.__file__, tests.__file__)"],
        cwd=scratch, env=_env(scratch), capture_output=True, text=True, check=False,
    )
    return out.returncode == 0 and out.stdout.count(str(scratch)) == 2


def run_check(
    check: Check, scratch: Path, mutant: Mutant | None = None
) -> tuple[bool, str, float] | None:
    """Run one check; (failed, detail, seconds), or None when it is not available."""
    argv = check.argv(scratch, mutant)
    if argv is None:
        return None
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv, cwd=scratch, env=_env(scratch), capture_output=True, text=True,
            timeout=check.timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        return True, f"no end within {check.timeout:.0f}s (hang)", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    if proc.returncode == 0:
        return False, "", dt
    out = proc.stdout + "\n" + proc.stderr
    detail = _sim_violation(out) or _failed_test(out)
    if detail is None:
        tail = " | ".join(line for line in out.strip().splitlines()[-3:])
        detail = f"exit {proc.returncode}: {tail[:200]}"
    return True, detail, dt


def run_mutant(
    mutant: Mutant, base: Path, all_checks: Sequence[Check], log: Callable[[str], None]
) -> Outcome:
    """Apply ``mutant`` to a fresh copy and run the checks until one catches it."""
    scratch = make_scratch(base)
    try:
        apply(mutant, scratch)
        total = 0.0
        passed: list[str] = []
        by_name = {c.name: c for c in all_checks}
        for check in (by_name[n] for n in mutant.checks if n in by_name):
            got = run_check(check, scratch, mutant)
            if got is None:
                continue
            failed, detail, dt = got
            total += dt
            log(f"  {check.name}: {'CAUGHT ' + detail if failed else 'passed'} ({dt:.0f}s)")
            if failed:
                # Earlier checks that let it through are part of the answer.
                missed = f" (passed: {', '.join(passed)})" if passed else ""
                return Outcome(mutant, True, f"{check.name}: {detail}{missed}", total)
            passed.append(check.name)
        return Outcome(mutant, False, f"every check passed: {', '.join(passed)}", total)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
