"""Throughput of the sans-I/O Raft core: a 3-node cluster in memory, no I/O at all.

Nodes pass messages directly (a FIFO queue), persist into MemoryStorage and
count applied entries. Each loop iteration proposes a batch of 100-byte
entries on the leader, then pumps Readies and messages until the cluster is
quiet, so batching (many entries per AppendRequest, one Ready per node per
round) does the work. Rows:

- ``storage only``: the baseline measured in the same run, appending the same
  entries straight into one MemoryStorage (the cost floor of keeping a log);
- ``1 node``: the core with no replication;
- ``3 nodes, batch B``: the real thing, for a few batch sizes;
- ``idle ticks``: tick rate of a 3-node cluster with a leader and heartbeats;
- ``msgs/write``: messages (all nodes) and leader Readies per committed write
  with 1 and 64 writes in flight (``window_costs``), the figure that matters
  once every message costs a gRPC send.

Rates are per second of CPU time (``time.process_time``): the bench box is
shared, so wall time would measure the neighbours.

Goal (issue 4): >= 100,000 entries/s of 100 bytes on one core with batching.

    python bench/core.py [--entries N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    Accepted,
    ConfState,
    Entry,
    Message,
    Role,
)
from nexus_raft.consensus.core.raft import Raft

PAYLOAD = b"v" * 100
GOAL = 100_000
TICK_ROUNDS = 20  # lock-step rounds per tick in window_costs (a round ~ 1 ms, a tick 20 ms)


class MemCluster:
    """``size`` cores wired together in memory; messages are delivered FIFO."""

    def __init__(self, size: int, *, max_entries: int = 4096) -> None:
        conf = ConfState(frozenset(range(1, size + 1)))
        self.storages = {i: MemoryStorage(conf) for i in conf.voters}
        self.nodes = {
            i: Raft(
                Config(id=i, election_tick=10, heartbeat_tick=1, max_entries_per_msg=max_entries,
                       max_size_per_msg=1 << 22, max_inflight_msgs=256),
                self.storages[i],
                random.Random(i),
            )
            for i in conf.voters
        }
        self.queue: deque[Message] = deque()
        self.applied = dict.fromkeys(self.nodes, 0)  # payload entries applied per node

    def pump(self) -> None:
        """Process Readies and deliver messages until nothing is left to do."""
        nodes = self.nodes
        storages = self.storages
        queue = self.queue
        applied = self.applied
        while True:
            busy = False
            for i, r in nodes.items():
                if r.has_ready():
                    busy = True
                    rd = r.ready()
                    st = storages[i]
                    if rd.snapshot is not None:
                        st.apply_snapshot(rd.snapshot)
                    if rd.entries:
                        st.append(rd.entries)
                    if rd.hard_state is not None:
                        st.set_hard_state(rd.hard_state)
                    queue.extend(rd.messages)
                    if rd.committed_entries:
                        applied[i] += sum(1 for e in rd.committed_entries if e.data)
                    r.advance(rd)
            if not queue:
                if not busy:
                    return
                continue
            while queue:
                m = queue.popleft()
                nodes[m.to].step(m)

    def elect(self) -> Raft:
        """Make node 1 the leader and let the no-op commit."""
        leader = self.nodes[1]
        leader.campaign()
        self.pump()
        if leader.role is not Role.LEADER:
            raise RuntimeError("node 1 failed to become leader")
        return leader


def bench_storage_only(total: int, batch: int) -> float:
    """Baseline: append the same entries to a MemoryStorage, no consensus."""
    st = MemoryStorage(ConfState(frozenset({1})))
    t0 = time.process_time()
    idx = 1
    while idx <= total:
        st.append([Entry(i, 1, data=PAYLOAD) for i in range(idx, idx + batch)])
        idx += batch
    return total / (time.process_time() - t0)


def bench_commit(size: int, total: int, batch: int) -> float:
    """Entries/s committed and applied on every node of a ``size``-node cluster."""
    c = MemCluster(size)
    leader = c.elect()
    base = dict(c.applied)
    t0 = time.process_time()
    proposed = 0
    while proposed < total:
        for _ in range(batch):
            out = leader.propose(PAYLOAD)
            if not isinstance(out, Accepted):
                raise RuntimeError(f"proposal refused: {out}")
        proposed += batch
        c.pump()
    # Followers learn the last commit index with the leader's next tick (the core
    # sends no commit-only appends), as in a running node.
    leader.tick()
    c.pump()
    dt = time.process_time() - t0
    done = min(c.applied[i] - base[i] for i in c.nodes)
    if done != proposed:
        raise RuntimeError(f"only {done} of {proposed} entries applied everywhere")
    return proposed / dt


def window_costs(window: int, writes: int) -> tuple[float, float, float]:
    """Messages and leader Readies per committed write with ``window`` writes in flight.

    A lock-step model of the node: each round every node handles one Ready,
    then every queued message is delivered; the leader proposes a new write
    for each one it applied (so ``window`` stay outstanding, like that many
    clients), and the cluster ticks every ``TICK_ROUNDS`` rounds (heartbeats).
    Returns (messages per write, leader Readies per write, CPU µs per write
    for the three cores together, harness included).
    """
    c = MemCluster(3)
    leader = c.elect()
    nodes = c.nodes
    storages = c.storages
    queue = c.queue
    lid = leader.id
    sent = readies = applied = proposed = rounds = 0
    t0 = time.process_time()
    for _ in range(window):
        leader.propose(PAYLOAD)
        proposed += 1
    while applied < writes:
        rounds += 1
        if rounds % TICK_ROUNDS == 0:
            for r in nodes.values():
                r.tick()
        for i, r in nodes.items():
            if not r.has_ready():
                continue
            rd = r.ready()
            st = storages[i]
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            if rd.entries:
                st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            queue.extend(rd.messages)
            sent += len(rd.messages)
            if i == lid:
                readies += 1
                done = sum(1 for e in rd.committed_entries if e.data)
                applied += done
                for _ in range(done):
                    leader.propose(PAYLOAD)
                proposed += done
            r.advance(rd)
        while queue:
            m = queue.popleft()
            nodes[m.to].step(m)
    cpu = time.process_time() - t0
    return sent / applied, readies / applied, cpu * 1e6 / applied


def bench_ticks(size: int, ticks: int) -> float:
    """Ticks/s of an idle cluster: every node ticks, heartbeats flow, Readies drain."""
    c = MemCluster(size)
    c.elect()
    nodes = list(c.nodes.values())
    t0 = time.process_time()
    for _ in range(ticks):
        for r in nodes:
            r.tick()
        c.pump()
    return ticks / (time.process_time() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=200_000, help="entries per row")
    ap.add_argument("--profile", action="store_true", help="profile the 3-node batch-256 row")
    args = ap.parse_args()
    if args.entries <= 0:
        ap.error("--entries must be positive")
    total = args.entries
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        bench_commit(3, total, 256)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    rows: list[tuple[str, float, str]] = []
    base = bench_storage_only(total, 256)
    rows.append(("storage only (baseline)", base, "entries/s"))
    rows.append(("1 node, batch 256", bench_commit(1, total, 256), "entries/s"))
    best = 0.0
    for batch in (16, 64, 256, 1024):
        rate = bench_commit(3, total, batch)
        best = max(best, rate)
        rows.append((f"3 nodes, batch {batch}", rate, "entries/s"))
    rows.append(("3 nodes, idle ticks", bench_ticks(3, 20_000), "ticks/s"))
    costs = [(w, *window_costs(w, 2_000 if w == 1 else 20_000)) for w in (1, 64)]
    print(f"core benchmark: {total} entries of {len(PAYLOAD)} bytes per row, one process")
    print(f"{'row':<26} {'rate':>12}  unit        vs baseline")
    print("-" * 60)
    for name, rate, unit in rows:
        rel = f"{rate / base:6.1%}" if unit == "entries/s" else ""
        print(f"{name:<26} {rate:>12,.0f}  {unit:<11} {rel}")
    print(f"{'in flight':<26} {'msgs/write':>12}  {'leader Readies/write':>20}  CPU µs/write")
    for w, msgs, rds, cpu in costs:
        print(f"{w:<26} {msgs:>12.3f}  {rds:>20.3f}  {cpu:>12.1f}")
    verdict = "meets" if best >= GOAL else "MISSES"
    print(f"best 3-node rate {best:,.0f} entries/s {verdict} the {GOAL:,} entries/s goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
