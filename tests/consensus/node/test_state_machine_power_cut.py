"""A power cut after a LevelDB log rotation leaves no hole in the state machine.

Found by the node simulator ("sm-holes"). The state machine applies
unsynced on the node's one store; every Raft batch is one synced write.
LevelDB rotates its write-ahead log when the memtable fills and closes the
old log file without an fsync, so a power cut used to keep a later apply
(made durable by a synced Raft write in the new log generation) and lose an
earlier one (the old generation's unsynced tail): the state machine came
back claiming an applied index whose commands were partly missing, and
nothing re-applied them. Now applies are carried (``Store.apply_batch``):
each rides again in the next synced Raft write, so what a power cut loses
is only the newest applies, which the node re-applies from its log.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage.simulated import SimulatedDisk

from .harness import FAST, free_ports, put, wait_until


def test_power_cut_after_a_log_rotation_leaves_no_hole_in_the_state_machine(
    tmp_path: Path,
) -> None:
    # LevelDB's rotation gap, and a rotated generation never flushed on its own.
    disk = SimulatedDisk(write_buffer_bytes=16 << 10, flush_after=(10**9, 10**9))
    port = free_ports(1)[0]
    cfg = NodeConfig(
        id=1, listen=f"127.0.0.1:{port}", peers={1: f"127.0.0.1:{port}"},
        data_dir=tmp_path / "n1", snapshot_every=10_000, **FAST,  # type: ignore[arg-type]
    )
    keys = [f"k/{i:02d}" for i in range(12)]

    async def scenario() -> None:
        node = RaftNode(cfg, KVStateMachine(), storage=disk)
        await node.start()
        try:
            await node.wait_for_leader(timeout=10)
            for key in keys[:10]:
                await node.propose(put(key, b"v" * 500), timeout=10)
            await wait_until(lambda: node.status().applied >= node.status().commit)
            # Fill the memtable: the next write, k/10's Raft save, starts a new
            # log generation, leaving k/09's apply in the old one, unsynced.
            store = node._store
            assert store is not None
            store.set(b"filler", b"0" * (16 << 10))
            rotations = disk.rotations
            # k/10 is applied in the new generation; k/11's synced save makes that durable.
            for key in keys[10:]:
                await node.propose(put(key, b"v" * 500), timeout=10)
            assert disk.rotations == rotations + 1
        finally:
            await node.shutdown()
        disk.crash(power_loss=True)
        disk.reboot()
        again = RaftNode(dataclasses.replace(cfg), KVStateMachine(), storage=disk)
        await again.start()
        try:
            await again.wait_for_leader(timeout=10)
            await again.read_index(timeout=10)  # the log's tail is committed and applied again
            sm = again.state_machine
            assert isinstance(sm, KVStateMachine)
            missing = [k for k in keys if sm.get(k.encode())[0] is None]
            assert not missing, f"acknowledged writes lost from the state machine: {missing}"
        finally:
            await again.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 60))
