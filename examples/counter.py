"""A replicated counter: a custom StateMachine on three RaftNodes (real gRPC, real LevelDB).

Each command is a signed 8-byte increment; every member applies them in log
order, so every member ends at the same value. The value and the applied
index are written in ONE batch, which makes applying exactly-once across
restarts (the node replays from ``open()``'s answer). Run it:

    python examples/counter.py            # three members in this process, temporary dirs
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import Iterable, Sequence

from nexus_raft.consensus import NodeConfig, RaftNode
from nexus_raft.consensus.state_machine import ChunkedSnapshot
from nexus_raft.storage import Batch, Store


class Counter:
    """The state machine: ``value`` is the sum of every applied increment."""

    def __init__(self) -> None:
        self.value = 0
        self.applied = 0
        self._store: Store | None = None

    # --- what RaftNode calls ------------------------------------------------------------

    def open(self, store: Store) -> int:
        self._store = store
        raw = store.tree("counter").get(b"state")
        if raw is not None:
            self.value, self.applied = json.loads(raw)
        return self.applied

    def apply(self, index: int, command: bytes) -> bytes:
        return self.apply_batch([(index, command)])[0]

    def apply_batch(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        results = []
        for index, command in items:
            if index > self.applied:  # already applied before a restart: skip
                self.value += int.from_bytes(command, "big", signed=True)
                self.applied = index
            results.append(str(self.value).encode())
        self._save()
        return results

    def note_applied(self, index: int) -> None:
        self.applied = max(self.applied, index)
        self._save()

    def applied_index(self) -> int:
        return self.applied

    def snapshot(self) -> ChunkedSnapshot:
        data = json.dumps([self.value, self.applied]).encode()
        return ChunkedSnapshot(self.applied, iter([data]), lambda: None)

    def restore(self, index: int, chunks: Iterable[bytes]) -> None:
        self.value, _ = json.loads(b"".join(chunks))
        self.applied = index
        self._save()

    def close(self) -> None:
        self._store = None

    def _save(self) -> None:
        assert self._store is not None
        batch = Batch()
        batch.insert(b"state", json.dumps([self.value, self.applied]).encode(), tree="counter")
        self._store.apply_batch(batch)  # value and applied index together


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def main() -> None:
    peers = {i: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(3), start=1)}
    with tempfile.TemporaryDirectory() as root:
        nodes = {
            i: RaftNode(
                NodeConfig(id=i, listen=peers[i], peers=peers, data_dir=f"{root}/{i}"), Counter()
            )
            for i in peers
        }
        try:
            for node in nodes.values():
                await node.start()
            leader_id = await nodes[1].wait_for_leader(timeout=10)
            leader = nodes[leader_id]
            for delta in (5, 10, -3, 30):
                result = await leader.propose(delta.to_bytes(8, "big", signed=True))
                print(f"+{delta:>3} -> {result.decode()}")
            await leader.read_index()  # a linearizable read point on the leader
            commit = leader.status().commit
            for node in nodes.values():  # followers apply too; wait until they have
                while node.status().applied < commit:
                    await asyncio.sleep(0.01)
            values = {i: n.state_machine.value for i, n in nodes.items()}  # type: ignore[union-attr]
            print("every member:", values)
            assert len(set(values.values())) == 1
        finally:
            for node in nodes.values():
                await node.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
