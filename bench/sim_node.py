"""Speed of the whole-node simulator: simulated seconds of a 3-member cluster per second.

Three complete members (RaftNode, durable log on the simulated disk,
KVStateMachine, KVService) on the virtual clock, with and without the
simulator's recorded client workload, and no faults. Rows:

- ``idle``: a leader and heartbeats only (the cost floor of ticking);
- ``N clients``: the workload every seed runs (puts, linearizable gets, cas
  and deletes through the real Client over the Pipeline stream, a pause of
  up to 0.3 s between a client's operations);
- ``seeds``: whole seeds of ``python -m tests.sim_node`` (faults, crashes,
  membership changes and all the checks), the figure that decides how many
  seeds fit in CI.

Rates are per second of CPU time (``time.process_time``): the box is shared,
so wall time would measure the neighbours; the wall rate is printed too.
Baseline in the same run: the core simulator (``tests.sim``), which runs the
sans-I/O cores alone, in ticks per CPU second.

Goal (issue 11): at least 20 simulated seconds of a 3-member cluster per second.

    python bench/sim_node.py [--seconds S] [--seeds N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sim.runner import run_seed as run_core_seed
from tests.sim.trace import Trace
from tests.sim_node.params import params_for
from tests.sim_node.runner import run_seed
from tests.sim_node.sim import Sim
from tests.sim_node.workload import Workload


def cluster(clients: int, seconds: float) -> tuple[float, float, int]:
    """(CPU s, wall s, operations) for ``seconds`` of a 3-member cluster."""
    params = dataclasses.replace(params_for(0), voters=3, witness=False, clients=clients,
                                 loss=0.0, dup=0.0, slow=0.0)
    sim = Sim(params, Trace(), tempfile.mkdtemp(prefix="nx-bench-simnode-"))
    out: list[float] = []
    workload = Workload(sim)

    async def main() -> None:
        for i in (1, 2, 3):
            sim.initial_peers[i] = sim.net.address(i)
        for i in (1, 2, 3):
            sim.add_member(i, witness=False, join=False)
        for i in (1, 2, 3):
            await sim.members[i].start()
        await asyncio.sleep(2.0)  # elect a leader before measuring
        if clients:
            workload.start()
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        out.extend((time.process_time() - c0, time.perf_counter() - w0))

    sim.loop.run_until_complete(sim.loop.create_task(main(), context=sim.root))
    sim.loop.end()
    return out[0], out[1], workload.ops


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="simulated seconds per row")
    ap.add_argument("--seeds", type=int, default=20, help="whole seeds for the last row")
    args = ap.parse_args(argv)
    print(f"{'3-member cluster':<28}{'sim s/CPU s':>12}{'sim s/wall s':>13}{'ops/sim s':>11}")
    for clients in (0, 1, 3, 6):
        cpu, wall, ops = cluster(clients, args.seconds)
        name = "idle" if not clients else f"{clients} clients"
        print(f"{name:<28}{args.seconds / cpu:>12.1f}{args.seconds / wall:>13.1f}"
              f"{ops / args.seconds:>11.1f}")
    sim_s = cpu_s = wall_s = 0.0
    ticks = 0
    for seed in range(args.seeds):
        res = run_seed(seed)
        sim_s += res.sim_seconds
        cpu_s += res.cpu_seconds
        wall_s += res.wall_seconds
        ticks += res.ticks
    print(f"{f'{args.seeds} seeds (faults, checks)':<28}{sim_s / cpu_s:>12.1f}"
          f"{sim_s / wall_s:>13.1f}{'':>11}   {ticks} ticks in {cpu_s:.1f} CPU s")
    c0 = time.process_time()
    core_ticks = sum(run_core_seed(seed).ticks for seed in range(200))
    core_cpu = time.process_time() - c0
    print(f"baseline: core simulator (tests.sim), {core_ticks / core_cpu:,.0f} ticks per CPU s "
          f"(node simulator: {ticks / cpu_s:,.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
