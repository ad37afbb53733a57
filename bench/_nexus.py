"""nexus_raft side of bench/cluster.py: three ``nexus-node`` processes and the ``Client``.

Also the two large-state measurements (``--only restart`` / ``--only rss``):
a cluster is filled with N keys through ``Batch`` RPCs (one log entry per
key), then RSS per node is read from /proc and a follower and the whole
cluster are restarted and timed until they serve again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from _cluster_common import (
    KVAdapter,
    Proc,
    free_ports,
    print_table,
    rss_mb,
    wait_port,
)

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

# The members import nexus_raft from this checkout even when it is not installed.
_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep),
}


class NexusClient(KVAdapter):
    """The public ``Client``: concurrent calls share batches on its Pipeline stream."""

    def __init__(self, endpoints: list[str]) -> None:
        self.client = Client(endpoints, timeout=5.0)

    async def put(self, key: bytes, value: bytes) -> None:
        await self.client.put(key, value)

    async def get(self, key: bytes) -> bytes | None:
        return await self.client.get(key)

    async def close(self) -> None:
        await self.client.close()


class NexusCluster:
    """Three ``python -m nexus_raft.cli.node`` processes on loopback (fsync on, defaults)."""

    name = "nexus_raft"
    note = (
        "fsync per group commit (LevelDB sync write), "
        "client batches on a Pipeline stream, one log entry per batch"
    )
    extra_concurrency: tuple[int, ...] = (1024,)

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nexus-"))
        self.ports = free_ports(3)
        self.endpoints = [f"127.0.0.1:{p}" for p in self.ports]
        peers = ",".join(f"{i + 1}={e}" for i, e in enumerate(self.endpoints))
        self.procs = [
            Proc(
                [
                    sys.executable,
                    "-m",
                    "nexus_raft.cli.node",
                    "--id",
                    str(i + 1),
                    "--listen",
                    self.endpoints[i],
                    "--peers",
                    peers,
                    "--data-dir",
                    str(self.dir / f"n{i + 1}"),
                    "--log-level",
                    "warning",
                    *(extra_args or []),
                ],
                self.dir / f"n{i + 1}.log",
                env=_ENV,
            )
            for i in range(3)
        ]

    def start(self) -> None:
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + 30
        for port in self.ports:
            wait_port(port, deadline)
        asyncio.run(self._wait_ready(deadline))

    async def _wait_ready(self, deadline: float) -> None:
        async with Client(self.endpoints, timeout=2.0) as c:
            last: Exception | None = None
            while time.monotonic() < deadline:
                try:
                    await c.put(b"ready", b"1")
                    return
                except Exception as exc:
                    last = exc
                    await asyncio.sleep(0.1)
        tails = "\n".join(p.tail(5) for p in self.procs)
        raise TimeoutError(f"nexus cluster did not become ready: {last!r}\n{tails}")

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def connect(self) -> KVAdapter:
        return NexusClient(self.endpoints)

    async def status(self, member: int, timeout: float = 1.0) -> Any:
        """One member's Status RPC (a ``kv_pb2.StatusResponse``), raw: no client retry logic."""
        async with grpc.aio.insecure_channel(self.endpoints[member]) as ch:
            stub = kv_pb2_grpc.KVStub(ch)
            return await stub.Status(kv_pb2.StatusRequest(), timeout=timeout)

    async def leader(self) -> int:
        """The live member that reports itself leader."""
        for i, p in enumerate(self.procs):
            if not p.alive:
                continue
            try:
                st = await self.status(i)
            except grpc.aio.AioRpcError:
                continue
            if st.leader_id == st.id:
                return i
        raise RuntimeError("nexus: no live member reports itself leader")

    def kill(self, member: int) -> None:
        self.procs[member].kill()

    def restart(self, member: int) -> None:
        self.procs[member].start()
        wait_port(self.ports[member], time.monotonic() + 20)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs if p.popen is not None and p.alive]


# --- large state: restart time and RSS -----------------------------------------------


async def fill(cluster: NexusCluster, entries: int, *, value_size: int = 256) -> float:
    """Write ``entries`` distinct keys with Batch RPCs to the leader; returns seconds.

    Batches of 128 puts, 4 in flight: measured here, 1,000-op batches filled
    at ~600 keys/s and 128-op batches at ~3,500 keys/s. Puts of fixed
    key/value pairs are idempotent, so a batch (or the ops of it that failed)
    is simply sent again after a leader change.
    """
    per_batch, in_flight = 128, 4
    value = b"v" * value_size
    t0 = time.monotonic()
    target = [cluster.endpoints[await cluster.leader()]]
    channels: dict[str, grpc.aio.Channel] = {}

    def stub() -> Any:
        ep = target[0]
        if ep not in channels:
            channels[ep] = grpc.aio.insecure_channel(
                ep, options=[("grpc.max_send_message_length", 64 << 20)]
            )
        return kv_pb2_grpc.KVStub(channels[ep])

    async def send(keys: list[bytes]) -> None:
        deadline = time.monotonic() + 120
        last: object = None
        while keys:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fill: {len(keys)} puts still failing after 120 s: {last}")
            ops = [kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=k, value=value)) for k in keys]
            try:
                resp = await stub().Batch(kv_pb2.BatchRequest(ops=ops), timeout=30)
            except grpc.aio.AioRpcError as exc:
                last = exc.code()
                await asyncio.sleep(0.2)
                with contextlib.suppress(RuntimeError):
                    target[0] = cluster.endpoints[await cluster.leader()]
                continue
            if resp.HasField("error") and resp.error.code:
                last = resp.error
                if resp.error.leader_address:
                    target[0] = resp.error.leader_address
                await asyncio.sleep(0.05)
                continue
            failed = [
                (k, r.put.error)
                for k, r in zip(keys, resp.results, strict=True)
                if r.put.HasField("error") and r.put.error.code
            ]
            keys = [k for k, _ in failed]
            last = failed[0][1] if failed else last

    starts = iter(range(0, entries, per_batch))

    async def sender() -> None:
        for start in starts:
            await send([b"big/%09d" % k for k in range(start, min(entries, start + per_batch))])
            if start // per_batch % 800 == 799:  # ~every 100,000 keys
                done = start + per_batch
                print(f"  ... {done:,} keys ({time.monotonic() - t0:.0f} s)", flush=True)

    try:
        await asyncio.gather(*(sender() for _ in range(in_flight)))
    finally:
        for ch in channels.values():
            await ch.close()
    return time.monotonic() - t0


async def _time_until(pred_member: int, cluster: NexusCluster, min_applied: int) -> float:
    """Spawn member ``pred_member`` and time until its Status shows applied >= min_applied."""
    t0 = time.monotonic()
    cluster.procs[pred_member].start()
    while time.monotonic() - t0 < 120:
        with contextlib.suppress(grpc.aio.AioRpcError):
            st = await cluster.status(pred_member, timeout=0.5)
            if st.applied >= min_applied:
                return time.monotonic() - t0
        await asyncio.sleep(0.02)
    raise TimeoutError(f"member {pred_member + 1} did not recover within 120 s")


async def _big(cluster: NexusCluster, entries: int) -> list[list[str]]:
    rows: list[list[str]] = []
    secs = await fill(cluster, entries)
    rows.append(["fill", f"{entries:,} keys in {secs:.1f} s ({entries / secs:,.0f} keys/s)"])
    leader = await cluster.leader()
    st = await cluster.status(leader)
    rows.append(["log", f"last index {st.last_index:,}, applied {st.applied:,}"])
    await asyncio.sleep(2.0)  # let compaction/background work settle before reading RSS
    rss = rss_mb(cluster.pids())
    rows.append(["RSS per node (MiB)", ", ".join(f"{r:.0f}" for r in rss)])
    # Restart one follower: SIGKILL, then time spawn -> serving status with its old state.
    follower = next(i for i in range(3) if i != leader)
    applied = (await cluster.status(follower)).applied
    cluster.kill(follower)
    t = await _time_until(follower, cluster, applied)
    rows.append(["restart follower (kill -9 -> serving, applied restored)", f"{t:.2f} s"])
    # Restart the whole cluster: time spawn -> first linearizable read.
    for i in range(3):
        cluster.kill(i)
    t0 = time.monotonic()
    for p in cluster.procs:
        p.start()
    async with Client(cluster.endpoints, timeout=60) as c:
        got = await c.get(b"big/%09d" % (entries - 1))
    rows.append(
        ["restart all 3 (kill -9 -> first linearizable get)", f"{time.monotonic() - t0:.2f} s"]
    )
    if got is None:
        raise RuntimeError("the last written key is missing after restart")
    rss = rss_mb(cluster.pids())
    rows.append(["RSS per node after restart (MiB)", ", ".join(f"{r:.0f}" for r in rss)])
    return rows


def run_big(what: str, entries: int) -> int:
    """``--only restart|rss``: fill a cluster with ``entries`` keys, measure both."""
    cluster = NexusCluster()
    print(f"== nexus_raft with {entries:,} keys / log entries ({what})", flush=True)
    try:
        cluster.start()
        rows = asyncio.run(_big(cluster, entries))
    finally:
        cluster.stop()
    print_table(["measurement", "result"], rows, title="nexus_raft large state")
    return 0
