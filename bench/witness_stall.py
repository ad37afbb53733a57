"""How long commits stall when a full member stops: 2 full + 1 witness versus 3 full.

Same processes and load as ``bench/witness.py`` (member 1 leads, one shared
``Client``, fresh keys). After one second of load, member 2 is either paused
with SIGSTOP (silent: its connections stay open, so the leader notices only
by timeout) or killed with SIGKILL (its connections break at once). In a
2+1 cluster every commit needs member 2 until the leader declares it lagging
and sends the witness payloads, so acknowledgements stop for a while; a 3-full
cluster keeps committing with member 3. Printed: the longest gap between two
acknowledged writes around the event, and the write rate before and after.

Run: ``.venv/bin/python bench/witness_stall.py`` (``--clients``, ``--seconds``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from witness import Cluster, running

from nexus_raft.kv.client.client import Client


async def stall(cluster: Cluster, *, how: str, clients: int, seconds: float) -> str:
    """Load ``cluster``, stop member 2 after 1 s; one table row."""
    async with Client(list(cluster.addresses.values())) as client:
        await cluster.lead_with_member_1(client)
        for i in range(20):
            await client.put(f"warm/{i}", b"x" * 256)
        acks: list[float] = []
        stop_at = time.perf_counter() + 1.0 + seconds

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < stop_at:
                await client.put(f"k/{w}/{n}", b"x" * 256)
                acks.append(time.perf_counter())
                n += 1

        async def stopper() -> float:
            await asyncio.sleep(1.0)
            if how == "SIGSTOP":
                os.kill(cluster.procs[2].pid, signal.SIGSTOP)
            else:
                cluster.procs[2].kill()
            return time.perf_counter()

        stopping = asyncio.create_task(stopper())
        try:
            await asyncio.gather(*(worker(w) for w in range(clients)))
            at = await stopping
        finally:
            if how == "SIGSTOP":
                os.kill(cluster.procs[2].pid, signal.SIGCONT)
    acks.sort()
    near = [t for t in acks if at - 0.5 <= t]
    gap = max((b - a for a, b in itertools.pairwise(near)), default=float("nan"))
    before = sum(1 for t in acks if at - 1.0 < t <= at)
    after = sum(1 for t in acks if t > at) / max(1e-9, acks[-1] - at) if acks[-1] > at else 0.0
    return (f"{cluster.name:>18} | {how:>7} | {clients:7d} | {gap * 1000:10.0f} | "
            f"{before:9.0f} | {after:8.0f}")  # fmt: skip


async def run_all(clients: list[int], seconds: float) -> list[str]:
    rows = []
    for n in clients:
        for how in ("SIGSTOP", "SIGKILL"):
            for witness in (False, True):
                with tempfile.TemporaryDirectory(prefix="nexus-stall-") as tmp, running(
                    Path(tmp), witness=witness
                ) as cluster:
                    rows.append(await stall(cluster, how=how, clients=n, seconds=seconds))
                    print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", default="1,32", help="concurrencies, comma separated")
    parser.add_argument("--seconds", type=float, default=2.0, help="load time after the stop")
    args = parser.parse_args(argv)
    try:
        clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        print(f"bad --clients {args.clients!r}: expected integers like 1,32", file=sys.stderr)
        return 2
    head = (f"{'cluster':>18} | {'member2':>7} | {'clients':>7} | {'max gap ms':>10} | "
            f"{'w/s before':>9} | {'w/s after':>8}")  # fmt: skip
    print(head)
    print("-" * len(head))
    asyncio.run(run_all(clients, args.seconds))
    print("max gap: longest time between two acknowledged writes from 0.5 s before the stop on.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
