"""Known bugs: recognising a violation caused by a bug that is reported and being fixed.

While a bug found by the simulator waits for its fix, every seed that runs
into it fails, and which seeds those are changes with any change to the code
(a different random draw shifts everything after it). So instead of a list
of seeds, each known bug has a precise signature built from what happened to
the member the violation names, and ``--tolerate`` (the Makefile passes the
open ones) reports such seeds as KNOWN instead of failing the run. A
violation that matches no signature always fails. When a fix lands, its key
leaves ``NODE_TOLERATE`` and the same seeds must pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.sim.checker import Violation

__all__ = ["KNOWN", "Facts", "classify"]

# Open known bugs, key -> what goes wrong. None is open: the signatures of
# issue #10 items 2 and 5 left with their fixes (be9849c, f81bef2), "compact"
# with 6394d13, "sm-holes" and "guard" with theirs. A new bug gets a key
# here, a signature in classify() from the facts below, and a place in the
# Makefile's NODE_TOLERATE until its fix lands.
KNOWN: dict[str, str] = {}


@dataclass
class Facts:
    """What happened to each member during a seed, as far as known bugs care."""

    restore_crash: set[int] = field(default_factory=set)  # died inside a snapshot restore
    power_lost: set[int] = field(default_factory=set)  # lost unsynced writes in a power cut
    empty_behind: set[int] = field(default_factory=set)  # started with an empty state machine
    behind: set[int] = field(default_factory=set)  # started behind its log snapshot
    refusals: Counter[str] = field(default_factory=Counter)  # peer requests refused, by kind


def classify(v: Violation, facts: Facts) -> str | None:
    """The key of the known bug ``v`` is an instance of, or None (always, while none is open)."""
    del v, facts
    return None
