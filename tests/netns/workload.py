"""Clients for the partition tests; runs inside the lab's client namespace.

    python -m tests.netns.workload status --endpoints A,B,C
        one JSON line: {"endpoint": [id, leader_id, term] or null, ...}
    python -m tests.netns.workload run --endpoints A,B,C --seconds S --clients N --seed X --out F
        N sequential clients do put/get/cas/delete on a few keys for S seconds,
        then (faults healed by then) read every key once more; the history
        (tests.lin format) goes to F, a JSON summary line to stdout.

Every value written is unique, so the linearizability checker can tell
writes apart; a write whose answer was lost is recorded as unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import sys
import time

import grpc

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc
from tests.lin.history import History
from tests.lin.model import OpKind

KEYS = [f"netns/{i}".encode() for i in range(3)]
OP_TIMEOUT = 2.0


async def status(endpoints: list[str]) -> dict[str, list[int] | None]:
    """(id, leader id, term) per endpoint; None where it did not answer in time."""

    async def one(ep: str) -> list[int] | None:
        try:
            async with grpc.aio.insecure_channel(ep) as ch:
                st = await kv_pb2_grpc.KVStub(ch).Status(kv_pb2.StatusRequest(), timeout=1.0)
        except grpc.aio.AioRpcError:
            return None
        return [st.id, st.leader_id, st.term]

    got = await asyncio.gather(*(one(ep) for ep in endpoints))
    return dict(zip(endpoints, got, strict=True))


async def _worker(
    cid: int, endpoints: list[str], hist: History, stop_at: float, rng: random.Random
) -> tuple[int, list[float]]:
    """One sequential client until ``stop_at``: (answered, completion times)."""
    done: list[float] = []
    last_seen: dict[bytes, bytes | None] = {}
    n = 0
    async with Client(endpoints, timeout=OP_TIMEOUT, attempt_timeout=0.5) as c:
        while time.monotonic() < stop_at:
            key = rng.choice(KEYS)
            roll = rng.random()
            n += 1
            value = f"c{cid}-{n}".encode()
            try:
                if roll < 0.45:
                    last_seen[key] = await hist.record(
                        cid, OpKind.GET, key, functools.partial(c.get, key))
                elif roll < 0.5:
                    await hist.record(cid, OpKind.DELETE, key, functools.partial(c.delete, key))
                elif roll < 0.8:
                    await hist.record(cid, OpKind.PUT, key, functools.partial(c.put, key, value),
                                      value=value, output=lambda _rev: None)
                else:
                    expected = last_seen.get(key)
                    await hist.record(cid, OpKind.CAS, key,
                                      functools.partial(c.cas, key, expected, value),
                                      value=value, expected=expected)
                done.append(time.time())
            except Exception:
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 0.01))
    return len(done), done


async def run(endpoints: list[str], seconds: float, clients: int, seed: int, out: str) -> dict:  # type: ignore[type-arg]
    rng = random.Random(seed)
    hist = History()
    stop_at = time.monotonic() + seconds
    results = await asyncio.gather(*(
        _worker(cid, endpoints, hist, stop_at, random.Random(rng.random()))
        for cid in range(clients)
    ))
    # The faults are healed by now: the last reads see every acknowledged write.
    async with Client(endpoints, timeout=20.0) as c:
        for key in KEYS:
            await hist.record(99, OpKind.GET, key, functools.partial(c.get, key))
    hist.close()
    hist.dump(out)
    return {
        "answered": [a for a, _ in results],
        "completions": sorted(t for _, ts in results for t in ts),
        "failed_reads": hist.failed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.netns.workload")
    ap.add_argument("command", choices=("status", "run"))
    ap.add_argument("--endpoints", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="history.jsonl")
    args = ap.parse_args(argv)
    endpoints = args.endpoints.split(",")
    if args.command == "status":
        print(json.dumps(asyncio.run(status(endpoints))))
    else:
        summary = asyncio.run(run(endpoints, args.seconds, args.clients, args.seed, args.out))
        print(json.dumps(summary))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
