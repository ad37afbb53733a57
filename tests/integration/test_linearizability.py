"""Linearizability of the KV service under crashes and pauses (real processes).

Three ``nexus-node`` members run on loopback. Five clients, each with its own
``Client``, do put/get/cas (and a few deletes) on four keys for ~20 s while a nemesis SIGKILLs
and restarts members and SIGSTOP/SIGCONT-pauses them (the leader more often
than not), mostly one member at a time so a quorum makes progress, and now
and then two at once for longer than a client's deadline (quorum loss).
Every call is recorded with its invoke/complete time; a write whose answer
was lost is recorded as "unknown" (it may or may not have happened). After
the nemesis stops and the cluster heals, every key is read once more, and the
whole history is checked by the Wing & Gong checker in :mod:`tests.lin`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc
from tests.lin.checker import Verdict, check_history
from tests.lin.history import History
from tests.lin.model import OpKind
from tests.lin.processes import NodeCluster

pytestmark = [pytest.mark.process, pytest.mark.slow]

KEYS = [f"lin/{i}".encode() for i in range(4)]
CLIENTS = 5
RUN_SECONDS = 20.0
OP_TIMEOUT = 2.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NodeCluster]:
    nodes = NodeCluster(tmp_path)
    try:
        nodes.start_all()
        yield nodes
    finally:
        nodes.close()


async def _leader(nodes: NodeCluster) -> int | None:
    """Index of a running, unpaused member that reports itself leader."""
    for i, endpoint in enumerate(nodes.endpoints):
        if not nodes.alive(i) or i in nodes.paused:
            continue
        try:
            async with grpc.aio.insecure_channel(endpoint) as ch:
                st = await kv_pb2_grpc.KVStub(ch).Status(kv_pb2.StatusRequest(), timeout=0.5)
        except grpc.aio.AioRpcError:
            continue
        if st.id and st.leader_id == st.id:
            return i
    return None


async def _wait_writable(nodes: NodeCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with Client(nodes.endpoints, timeout=1.0) as c:
        while True:
            try:
                await c.put(b"lin/ready", b"1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def _worker(
    cid: int, nodes: NodeCluster, hist: History, stop_at: float, rng: random.Random
) -> int:
    """One sequential client: random ops until ``stop_at``; returns how many answered."""
    answered = 0
    last_seen: dict[bytes, bytes | None] = {}
    n = 0
    async with Client(nodes.endpoints, timeout=OP_TIMEOUT, attempt_timeout=0.5) as c:
        while time.monotonic() < stop_at:
            key = rng.choice(KEYS)
            roll = rng.random()
            n += 1
            value = f"c{cid}-{n}".encode()  # unique: lets the checker tell writes apart
            try:
                if roll < 0.45:
                    last_seen[key] = await hist.record(
                        cid, OpKind.GET, key, functools.partial(c.get, key)
                    )
                elif roll < 0.5:
                    # Deletes report whether the key existed; the checker holds them to it.
                    await hist.record(cid, OpKind.DELETE, key, functools.partial(c.delete, key))
                elif roll < 0.75:
                    await hist.record(
                        cid,
                        OpKind.PUT,
                        key,
                        functools.partial(c.put, key, value),
                        value=value,
                        output=lambda _rev: None,
                    )
                else:
                    # Expect what this client saw last: sometimes current, often stale.
                    expected = last_seen.get(key)
                    await hist.record(
                        cid,
                        OpKind.CAS,
                        key,
                        functools.partial(c.cas, key, expected, value),
                        value=value,
                        expected=expected,
                    )
                answered += 1
            except Exception:
                await asyncio.sleep(0.05)
            # A little think time keeps the history at a few thousand ops.
            await asyncio.sleep(rng.uniform(0.0, 0.01))
    return answered


async def _nemesis(nodes: NodeCluster, stop_at: float, rng: random.Random) -> dict[str, int]:
    """Disturb one member at a time until ``stop_at``; returns counts per fault."""
    counts = {"kill": 0, "pause": 0, "quorum-loss": 0}
    await asyncio.sleep(1.5)
    # A fixed rotation, so every run has every kind of fault at least once.
    schedule = itertools.cycle(["kill", "pause", "quorum-loss", "pause", "kill"])
    while time.monotonic() < stop_at - 3.5:
        leader = await _leader(nodes)
        victim = leader if leader is not None and rng.random() < 0.7 else rng.randrange(3)
        fault = next(schedule)
        if fault == "kill":
            nodes.kill(victim)
            counts["kill"] += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            nodes.start(victim)
        elif fault == "pause":
            nodes.pause(victim)
            counts["pause"] += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            nodes.resume(victim)
        else:
            # Two members down for longer than a client's deadline: writes in
            # flight end with unknown outcomes, which the checker must place.
            second = (victim + rng.randrange(1, 3)) % 3
            nodes.kill(victim)
            nodes.pause(second)
            counts["quorum-loss"] += 1
            await asyncio.sleep(rng.uniform(OP_TIMEOUT + 0.3, OP_TIMEOUT + 1.0))
            nodes.resume(second)
            nodes.start(victim)
        await asyncio.sleep(rng.uniform(1.0, 2.0))
    return counts


async def _run(nodes: NodeCluster, seed: int) -> tuple[History, dict[str, int], list[int]]:
    rng = random.Random(seed)
    await _wait_writable(nodes, timeout=30)
    hist = History()
    stop_at = time.monotonic() + RUN_SECONDS
    workers = [
        _worker(cid, nodes, hist, stop_at, random.Random(rng.random())) for cid in range(CLIENTS)
    ]
    nemesis = asyncio.create_task(_nemesis(nodes, stop_at, rng))
    answered = list(await asyncio.gather(*workers))
    counts = await nemesis
    # Heal, then read every key once more: a lost acknowledged write shows up here.
    for i in range(3):
        if not nodes.alive(i):
            nodes.start(i)
    await _wait_writable(nodes, timeout=30)
    async with Client(nodes.endpoints, timeout=10.0) as c:
        for key in KEYS:
            await hist.record(99, OpKind.GET, key, functools.partial(c.get, key))
    hist.close()
    return hist, counts, answered


def test_history_under_kills_and_pauses_is_linearizable(
    cluster: NodeCluster, tmp_path: Path
) -> None:
    seed = random.randrange(1 << 30)
    hist, counts, answered = asyncio.run(_run(cluster, seed))
    ops = hist.operations()
    completed = [op for op in ops if not op.pending]
    unknown = len(ops) - len(completed)
    saw_writes = [op for op in completed if op.kind is OpKind.GET and op.output is not None]
    # The run must have exercised something, or a pass would mean nothing.
    assert all(n > 0 for n in counts.values()), counts
    assert len(completed) >= 500, (len(completed), answered)
    assert all(a > 0 for a in answered), answered
    assert len(saw_writes) >= 50, "reads never observed a write"

    started = time.monotonic()
    result = check_history(ops, timeout=180)
    elapsed = time.monotonic() - started
    dump = tmp_path / "history.jsonl"
    hist.dump(dump)
    summary = (
        f"seed {seed}: {len(ops)} ops ({unknown} unknown, {hist.failed} failed reads dropped), "
        f"faults {counts}, check {elapsed:.2f} s; history in {dump}"
    )
    logging.getLogger(__name__).info("%s: %s", summary, result.verdict.value)
    # pytest.fail rather than assert: the result's repr is thousands of operations.
    if result.verdict is Verdict.UNKNOWN:
        pytest.fail(f"checker budget ran out: {summary}")
    if result.verdict is not Verdict.LINEARIZABLE:
        pytest.fail(f"{summary}\n{result.explain()}")
