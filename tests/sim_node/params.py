"""What a seed decides before the run: cluster shape, timing, sizes, fault mix, length.

Every tenth seed (``seed % 10 == 9``) is a long one: at least 20,000 ticks
of faults and membership changes in sequence; the others run 800 to 3,000
ticks. Sizes are shrunk so that the interesting paths happen often:
compaction every few dozen entries (so lagging members get snapshots),
small memtables (so the disk's log rotates), small snapshot chunks.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

__all__ = ["LONG_EVERY", "LONG_TICKS", "Params", "gentle", "params_for"]

LONG_EVERY = 10
LONG_TICKS = 20_000


@dataclass(frozen=True)
class Params:
    """One seed's choices (see the module docstring)."""

    seed: int
    long: bool
    ticks: int  # ticks of the fault phase (a tick is tick_interval of virtual time)
    voters: int  # initial full voters
    witness: bool  # plus one witness
    journey: bool  # walk the membership through 2 voters and 1 voter + witness and back
    tick_interval: float
    election_ticks: int
    heartbeat_ticks: int
    snapshot_every: int
    keep_entries: int
    write_buffer_bytes: int
    flush_after: int
    ttl_ms: int
    chunk_bytes: int
    clients: int
    keys: int
    loss: float
    dup: float
    slow: float
    fault_gap: float  # mean virtual seconds between faults
    gentle: bool = False  # no crashes, power cuts or compactions: network, clock, membership only

    def describe(self) -> str:
        """One line for reports."""
        shape = f"{self.voters} voters" + (" + witness" if self.witness else "")
        return (
            f"{shape}, {'long ' if self.long else ''}{self.ticks} ticks, "
            f"snapshot every {self.snapshot_every} (keep {self.keep_entries}), "
            f"memtable {self.write_buffer_bytes} B, {self.clients} clients on {self.keys} keys, "
            f"loss {self.loss:.3f} dup {self.dup:.3f}, fault every ~{self.fault_gap:.1f}s"
            + (", membership journey" if self.journey else "")
        )


def gentle(seed: int, ticks: int = 600) -> Params:
    """A short seed without crashes, power cuts or forced compactions (for the test suite)."""
    return dataclasses.replace(params_for(seed), long=False, ticks=ticks, gentle=True)


def params_for(seed: int) -> Params:
    """The parameters of ``seed`` (deterministic)."""
    r = random.Random(f"params-{seed}")
    long = seed % LONG_EVERY == LONG_EVERY - 1
    shape = r.random()
    if shape < 0.45:
        voters, witness = 3, False
    elif shape < 0.65:
        voters, witness = 2, True
    elif shape < 0.8:
        voters, witness = 5, False
    elif shape < 0.87:
        voters, witness = 3, True
    elif shape < 0.95:
        voters, witness = 1, True  # one full voter and a witness (the witness keeps payloads)
    else:
        voters, witness = 2, False
    lossy = r.random() < 0.5
    return Params(
        seed=seed,
        long=long,
        ticks=r.randint(LONG_TICKS, LONG_TICKS + 4000) if long else r.randint(800, 3000),
        voters=voters,
        witness=witness,
        journey=long or r.random() < 0.4,
        tick_interval=0.02,
        election_ticks=10,
        heartbeat_ticks=2,
        snapshot_every=r.choice((16, 32, 64, 200)),
        keep_entries=r.choice((0, 4, 16)),
        write_buffer_bytes=r.choice((4 << 10, 16 << 10, 64 << 10, 4 << 20)),
        flush_after=r.choice((2, 20, 200)),
        ttl_ms=r.choice((30_000, 3_600_000)),
        chunk_bytes=r.choice((512, 4096, 1 << 20)),
        clients=r.randint(2, 4),
        keys=r.randint(3, 8),
        loss=r.choice((0.0, 0.002, 0.01, 0.03)) if lossy else 0.0,
        dup=r.choice((0.0, 0.01, 0.05)) if lossy else 0.0,
        slow=r.choice((0.0, 0.01, 0.05)),
        fault_gap=r.choice((0.3, 0.8, 2.0)),
    )
