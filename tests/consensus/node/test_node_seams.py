"""The seams the whole-node simulator uses: each is refused when mistyped, and works.

Production leaves them unset (gRPC, LevelDB, a private thread pool, a fresh
random source); these tests show that a given backend, executor and random
source are the ones the node uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.router import Router
from nexus_raft.kv.service.kv import KVService
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage.simulated import SimulatedDisk
from nexus_raft.transport.factory import GRPC, PeerTransport

from .harness import FAST, free_ports, put, wait_until


def _config(tmp_path: Path) -> NodeConfig:
    port = free_ports(1)[0]
    return NodeConfig(
        id=1, listen=f"127.0.0.1:{port}", peers={1: f"127.0.0.1:{port}"},
        data_dir=tmp_path / "n1", **FAST,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["transport", "executor", "rng", "storage"])
def test_a_mistyped_seam_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    kwargs: dict[str, Any] = {name: object()}
    with pytest.raises(TypeError, match=name):
        RaftNode(_config(tmp_path), KVStateMachine(), **kwargs)


def test_grpc_is_a_peer_transport() -> None:
    assert isinstance(GRPC, PeerTransport)


def test_node_runs_on_a_given_disk_executor_and_rng(tmp_path: Path) -> None:
    disk = SimulatedDisk()
    pool = ThreadPoolExecutor(max_workers=1)
    cfg = _config(tmp_path)

    async def scenario() -> None:
        node = RaftNode(cfg, KVStateMachine(), storage=disk, executor=pool,
                        rng=random.Random(7))
        await node.start()
        try:
            await node.wait_for_leader(timeout=10)
            await node.propose(put("k", b"v"), timeout=10)
        finally:
            await node.shutdown()
        assert disk.exists(str(cfg.store_path)) and disk.writes > 0
        assert pool.submit(lambda: 5).result() == 5  # the caller's executor is left running
        again = RaftNode(cfg, KVStateMachine(), storage=disk, executor=pool)
        await again.start()
        try:
            sm = again.state_machine
            assert isinstance(sm, KVStateMachine)
            assert sm.get(b"k")[0] == b"v"
        finally:
            await again.shutdown()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        pool.shutdown()
    assert not (tmp_path / "n1" / "store").exists()  # nothing went to LevelDB


def test_kv_service_stamps_writes_with_its_clock() -> None:
    node = SimpleNamespace(cluster_id="c", config=None)
    svc = KVService(node, clock=lambda: 12.3456)  # type: ignore[arg-type]
    assert svc._now_ms() == 12345
    with pytest.raises(TypeError, match="clock"):
        KVService(node, clock=5)  # type: ignore[arg-type]


def test_client_router_uses_the_stub_factory() -> None:
    made: list[str] = []

    def factory(target: str) -> tuple[str, str]:
        made.append(target)
        return ("stub", target)

    router = Router(["h:1"], attempt_timeout=1.0, stub_factory=factory)
    assert router.stub("h:1") == ("stub", "h:1")
    assert router.stub("h:1") == ("stub", "h:1")
    assert made == ["h:1"]
    with pytest.raises(TypeError, match="rng"):
        Client(["h:1"], rng=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stub_factory"):
        Client(["h:1"], stub_factory=3)  # type: ignore[arg-type]


def test_power_loss_after_a_compaction_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    """The state machine applies unsynced; the log compacts with a synced write.

    On a disk that models LevelDB's log rotation (a synced write does not sync
    the log file rotated before it), a compaction's record could become
    durable while the applies it covers were lost with the old log file: after
    a power cut the state machine was behind the log's snapshot, the entries
    that could rebuild it gone. The node flushes the store (memtable to a
    synced table) before it compacts, so a restart after the power cut has
    every acknowledged write.
    """
    disk = SimulatedDisk(write_buffer_bytes=16 << 10, flush_after=(10**9, 10**9))
    cfg = dataclasses.replace(_config(tmp_path), snapshot_every=10_000)

    async def scenario() -> None:
        node = RaftNode(cfg, KVStateMachine(), storage=disk)
        await node.start()
        try:
            await node.wait_for_leader(timeout=10)
            for i in range(120):
                await node.propose(put(f"k/{i:03d}", b"v" * 1500), timeout=10)
            await wait_until(lambda: node.status().applied >= node.status().commit)
            # Fill the memtable (an unsynced write): the compaction's first
            # write rotates LevelDB's log, past the applies it covers.
            store = node._store
            assert store is not None
            store.set(b"filler", b"0" * (16 << 10))
            await node.snapshot()
        finally:
            await node.shutdown()
        assert disk.rotations >= 5
        disk.crash(power_loss=True)
        disk.reboot()
        again = RaftNode(cfg, KVStateMachine(), storage=disk)
        await again.start()  # before the fix: StateBehindLog, the applies were lost
        try:
            await again.wait_for_leader(timeout=10)
            await again.read_index(timeout=10)  # the log's tail is committed and applied again
            sm = again.state_machine
            assert isinstance(sm, KVStateMachine)
            missing = [i for i in range(120) if sm.get(f"k/{i:03d}".encode())[0] is None]
            assert not missing, f"acknowledged writes lost: {missing[:5]}..."
        finally:
            await again.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 60))
