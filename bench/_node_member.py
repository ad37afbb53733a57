"""One RaftNode in its own process, driven by bench/node.py over stdin/stdout.

The parent writes one JSON command per line; the member answers one JSON
line per command. Load runs inside the member (in-process ``propose`` on the
leader) so the numbers are the node layer's own, without a client RPC hop.

    python bench/_node_member.py ID DATA_DIR PEERS_JSON
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nexus_raft.cli.loops import run_on
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.consensus.node.status import event_loop_name
from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.commands import KVCommand, KVOp
from nexus_raft.kv.state_machine import KVStateMachine


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    t = os.times()
    return t.user + t.system


class Member:
    """The node plus the command handlers."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.seq = 0

    def _cmd(self, value: bytes, key_space: int) -> bytes:
        self.seq += 1
        return KVCommand(KVOp.PUT, b"bench/%d" % (self.seq % key_space), value).encode()

    async def load(self, clients: int, seconds: float, value_bytes: int) -> dict[str, Any]:
        value = b"x" * value_bytes
        lat: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds
        node = self.node

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    await node.propose(self._cmd(value, 10_000), timeout=10.0)
                except NexusRaftError:
                    errors += 1
                    await asyncio.sleep(0.01)  # e.g. a leader change: do not spin
                    continue
                lat.append(time.perf_counter() - t)

        c0, t0 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
        lat.sort()
        n = len(lat)
        return {
            "n": n,
            "errors": errors,
            "elapsed": elapsed,
            "p50": lat[n // 2] if n else 0.0,
            "p99": lat[min(n - 1, int(n * 0.99))] if n else 0.0,
            "cpu": cpu,
        }

    async def put1(self, value_bytes: int) -> dict[str, Any]:
        try:
            await self.node.propose(self._cmd(b"y" * value_bytes, 10_000), timeout=1.0)
        except NexusRaftError as exc:
            return {"ok": False, "why": type(exc).__name__}
        return {"ok": True}

    def status(self) -> dict[str, Any]:
        node = self.node
        st = node.status()
        return {
            "id": node.id,
            "leader": node.is_leader,
            "leader_id": node.leader_id,
            "commit": st.commit,
            "applied": st.applied,
            "cpu": cpu_seconds(),
            "pid": os.getpid(),
            "loop": event_loop_name(),
        }

    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            return self.status()
        if op == "load":
            return await self.load(req["clients"], req["seconds"], req["value"])
        if op == "put1":
            return await self.put1(req["value"])
        if op == "profile":  # yappi (CPU clock, all threads) around the next requests
            return _profile(req["action"], req.get("path", ""))
        if op == "wait_leader":
            return {"leader_id": await self.node.wait_for_leader(req.get("timeout", 10.0))}
        return {"error": f"unknown op {op}"}


def _profile(action: str, path: str) -> dict[str, Any]:
    import yappi  # optional: pip install yappi

    if action == "start":
        yappi.set_clock_type("cpu")
        yappi.start(builtins=False, profile_threads=True)
    else:
        yappi.stop()
        yappi.get_func_stats().save(path, type="pstat")
        yappi.clear_stats()
    return {}


async def main() -> None:
    node_id, data_dir, peers_json = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    peers = {int(k): v for k, v in json.loads(peers_json).items()}
    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    node = RaftNode(
        NodeConfig(id=node_id, listen=peers[node_id], peers=peers, data_dir=data_dir,
                   **json.loads(os.environ.get("BENCH_NODE_OPTS", "{}"))),
        KVStateMachine(),
    )
    await node.start()
    member = Member(node)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            req = json.loads(line)
            if req["op"] == "quit":
                break
            try:
                resp = await member.handle(req)
            except Exception as exc:  # report, keep serving
                resp = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(resp) + "\n")
            out.flush()
    finally:
        await node.shutdown()


if __name__ == "__main__":
    # The event loop as nexus-node chooses it (--event-loop, default auto).
    run_on(os.environ.get("BENCH_LOOP", "auto"), main())
