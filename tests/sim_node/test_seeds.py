"""Whole seeds of the node simulator in the test suite: they run, and they replay.

The full adversarial runs are ``make sim`` (crashes, power cuts, armed
crashes, compactions); here two short *gentle* seeds (network, clock,
pauses and membership faults only) run end to end under every check, and
one of them twice to show that a seed replays exactly (same events, same
counts) in the same process.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.sim.trace import Trace
from tests.sim_node.params import gentle
from tests.sim_node.runner import SeedResult, run_seed


def _run(seed: int) -> tuple[SeedResult, str]:
    trace = Trace(keep=1_000_000)
    res = run_seed(seed, trace, params=gentle(seed))
    digest = hashlib.sha256(repr(list(trace.events)).encode()).hexdigest()
    return res, digest


@pytest.mark.parametrize("seed", [3, 4])
def test_a_gentle_seed_passes_every_check(seed: int) -> None:
    res, _ = _run(seed)
    assert res.violation is None, res.trace.excerpt(60)
    assert res.coverage["cluster recovered after the faults"] == 1
    assert res.stats["client operations"] > 50


def test_a_seed_replays_exactly() -> None:
    first, a = _run(3)
    second, b = _run(3)
    assert a == b
    assert first.ticks == second.ticks and first.coverage == second.coverage
