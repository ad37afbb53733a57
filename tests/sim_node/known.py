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

import re
from collections import Counter
from dataclasses import dataclass, field

from tests.sim.checker import Violation

__all__ = ["KNOWN", "Facts", "classify"]

KNOWN = {
    "10.2": "issue #10 item 2: a crash inside a snapshot restore leaves an empty state machine "
            "that the node then applies on (and serves from)",
    "10.5": "issue #10 item 5: a power cut after a LevelDB log rotation loses Raft writes "
            "that a later synced write was meant to cover (log holes, lost hard state)",
    "guard": "found by the node simulator: a member that missed a configuration change refuses "
             "(PeerRefused not-member) the leader or candidate that joined meanwhile, so it "
             "never catches up (liveness)",
}

# Rules a power cut that undoes synced Raft writes breaks (on the member that lost power).
_POWER_RULES = {
    "durable vote", "durable log", "commit monotonic", "term monotonic", "one vote per term",
    "member failed to start", "log matching",
}

@dataclass
class Facts:
    """What happened to each member during a seed, as far as known bugs care."""

    restore_crash: set[int] = field(default_factory=set)  # died inside a snapshot restore
    power_lost: set[int] = field(default_factory=set)  # lost unsynced writes in a power cut
    empty_behind: set[int] = field(default_factory=set)  # started with an empty state machine
    behind: set[int] = field(default_factory=set)  # started behind its log snapshot
    refusals: Counter[str] = field(default_factory=Counter)  # peer requests refused, by kind


def classify(v: Violation, facts: Facts) -> str | None:
    """The key of the known bug ``v`` is an instance of, or None."""
    members = {int(m) for m in re.findall(r"\bmembers? (\d+)", v.detail)}
    members |= {int(m) for m in re.findall(r"\band (\d+) hold", v.detail)}
    if members & facts.empty_behind & facts.restore_crash:
        return "10.2"
    if v.invariant in _POWER_RULES and members & facts.power_lost:
        return "10.5"
    if v.invariant == "liveness" and facts.refusals["not-member"]:
        return "guard"
    return None
