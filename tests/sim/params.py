"""Per-seed parameters: cluster shape, timing and fault rates, all drawn from the seed.

Every seed picks its own mix so that a few thousand seeds cover quiet
clusters, lossy ones, slow ones, churning ones and the scripted witness stall
case. Probabilities are per tick unless said otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SCENARIO_RANDOM = "random"
SCENARIO_WITNESS_STALL = "witness-stall"
SCENARIO_LONG = "long"  # phases of faults and changes, at least LONG_TICKS in all
LONG_TICKS = 20_000

# Clients stop proposing while the leader has this many uncommitted entries (a
# client's bounded window). Without it a slow configuration (1 entry per message,
# 1 in flight, 15% loss) piles up hundreds of entries that no bound can drain.
MAX_CLIENT_BACKLOG = 32


@dataclass(frozen=True, slots=True)
class SimParams:
    """Everything a seed decides before the run starts."""

    seed: int
    scenario: str
    full_voters: int  # initial full voters
    witness: bool  # one initial witness (a voter)
    learners: int  # initial learners
    election_tick: int
    heartbeat_tick: int
    pre_vote: bool
    check_quorum: bool
    max_entries_per_msg: int
    max_size_per_msg: int
    max_inflight_msgs: int
    fault_ticks: int  # ticks with faults before the heal
    loss: float
    dup: float
    max_delay: int
    reorder: float  # per message: overtaken by later ones due the same tick
    defer_ready: float  # per event: leave the Ready for the end of the round (1.0: always)
    crash_unpersisted: float  # per deferred Ready: crash before it is persisted
    p_partition: float
    p_heal: float
    p_crash: float
    p_restart: float
    p_churn: float
    p_transfer: float
    p_snapshot: float
    p_propose: float
    p_read: float
    p_fresh_churn: float  # per new leader: a conf change at once (before its first commit)
    p_fresh_transfer: float  # per new leader: a transfer at once
    p_fresh_isolate: float  # per new leader: cut it off at once
    p_transfer_in_change: float  # per accepted conf change: a transfer right after it
    parallel_append: bool  # a leader sends appends before its own fsync (the driver's default)
    max_batch: int
    keys: int

    @property
    def liveness_ticks(self) -> int:
        """Bound for a leader plus one commit after the heal: 20 election timeouts, plus
        two ticks (a round trip) for each entry a client may have left uncommitted
        (``MAX_CLIENT_BACKLOG``), which the new entry commits behind."""
        return 20 * self.election_tick + 2 * MAX_CLIENT_BACKLOG


def draw(seed: int, rng: random.Random) -> SimParams:
    """The parameters of ``seed`` (consumes ``rng``, the seed's one generator)."""
    r = rng.random
    x = r()
    scenario = (
        SCENARIO_WITNESS_STALL if x < 0.12 else SCENARIO_LONG if x < 0.22 else SCENARIO_RANDOM
    )
    if scenario == SCENARIO_WITNESS_STALL:
        full, witness, learners = 2, True, 0
    else:
        shape = r()
        if shape < 0.25:
            full, witness = 2, True  # the 2 full + 1 witness deployment
        elif shape < 0.4:
            full, witness = rng.choice((3, 4)), True
        else:
            full, witness = rng.choice((3, 3, 4, 5)), False
        learners = 1 if r() < 0.3 else 0
    lossy = r() < 0.6
    long = scenario == SCENARIO_LONG
    return SimParams(
        seed=seed,
        scenario=scenario,
        full_voters=full,
        witness=witness,
        learners=learners,
        election_tick=rng.choice((6, 8, 10)),
        heartbeat_tick=rng.choice((1, 2, 2, 3, 3)),
        pre_vote=r() < 0.85,
        check_quorum=r() < 0.85,
        max_entries_per_msg=rng.choice((8, 64) if long else (1, 8, 64, 64)),
        # A long seed's logs grow large: one tiny entry per message would make it
        # cost minutes, so long seeds batch at least a few entries per message.
        max_size_per_msg=rng.choice((1024, 1 << 20) if long else (64, 1024, 1 << 20)),
        max_inflight_msgs=rng.choice((1, 4, 256)),
        fault_ticks=rng.randint(60, 180),
        loss=rng.choice((0.01, 0.05, 0.15)) if lossy else 0.0,
        dup=rng.choice((0.0, 0.02, 0.1)),
        max_delay=rng.choice((0, 1, 2, 3)),
        reorder=rng.choice((0.0, 0.05, 0.3)),
        defer_ready=rng.choice((0.0, 0.3, 1.0, 1.0)),
        crash_unpersisted=rng.choice((0.0, 0.003, 0.01)),
        p_partition=rng.choice((0.0, 0.02, 0.05)),
        p_heal=rng.choice((0.05, 0.1)),
        p_crash=rng.choice((0.0, 0.01, 0.03)),
        p_restart=rng.choice((0.05, 0.15)),
        p_churn=rng.choice((0.0, 0.01, 0.03)),
        p_transfer=rng.choice((0.0, 0.01, 0.03)),
        p_snapshot=rng.choice((0.0, 0.02, 0.08)),
        p_propose=rng.choice((0.1, 0.3, 0.6)),
        p_read=rng.choice((0.0, 0.1, 0.3)),
        max_batch=rng.choice((1, 2, 5)),
        keys=rng.choice((2, 8)),
        p_fresh_churn=rng.choice((0.0, 0.2, 0.5)),
        p_fresh_transfer=rng.choice((0.0, 0.0, 0.1)),
        p_fresh_isolate=rng.choice((0.0, 0.05, 0.15)),
        p_transfer_in_change=rng.choice((0.0, 0.1, 0.3)),
        parallel_append=r() < 0.7,
    )
