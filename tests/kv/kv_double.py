"""A test double of a small cluster for tests about the KV client's logic.

Real gRPC servers on 127.0.0.1 run the real :class:`KVService`; only the
Raft node behind each one is replaced by :class:`DoubleNode`, which shares
one in-memory :class:`DoubleKV` with its "replicas" and answers
``NotLeader`` unless the shared :class:`DoubleCluster` says it leads. That is
enough to test leader following, retries, batching, exactly-once sessions and
watch resumption without Raft in the way; the real thing is covered by the
process tests in tests/integration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import grpc

from nexus_raft.errors import Compacted, NotLeader, Timeout, Unavailable
from nexus_raft.kv.commands import (
    GROUP_MAGIC,
    KVCommand,
    KVOp,
    KVResult,
    ResultCode,
    encode_group_result,
    split_group,
)
from nexus_raft.kv.service.kv import KVService

CLUSTER_ID = "test-cluster"


@dataclass(frozen=True)
class Event:
    revision: int
    key: bytes
    value: bytes | None


class DoubleWatch:
    """History from a revision, then live events (what KVStateMachine.watch promises)."""

    def __init__(self, kv: DoubleKV, prefix: bytes, start: int) -> None:
        self._kv = kv
        self._prefix = prefix
        self._next = start if start else kv.rev + 1
        self.closed = False

    def __aiter__(self) -> DoubleWatch:
        return self

    async def __anext__(self) -> Event:
        while not self.closed:
            for event in self._kv.history:
                if event.revision >= self._next and event.key.startswith(self._prefix):
                    self._next = event.revision + 1
                    return event
            async with self._kv.changed:
                await self._kv.changed.wait()
        raise StopAsyncIteration

    def close(self) -> None:
        self.closed = True


@dataclass
class DoubleKV:
    """Shared state of the double cluster: data, history, sessions."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    history: list[Event] = field(default_factory=list)
    sessions: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    rev: int = 0
    applied: int = 0  # commands actually applied (not answered from a session)
    entries: int = 0  # log entries proposed (a group of commands is one)
    compacted_below: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def apply(self, command: KVCommand) -> bytes:
        if command.client_id:
            last = self.sessions.get(command.client_id)
            if last is not None and last[0] == command.seq:
                return last[1]
            if last is not None and last[0] > command.seq:
                return KVResult.failure(ResultCode.STALE, self.rev, "stale").encode()
        self.applied += 1
        prev = self.data.get(command.key)
        ok = True
        if command.op is KVOp.CAS:
            ok = prev is None if command.expect_absent else prev == command.expected
        if ok:
            self.rev += 1
            value = command.value if command.op is not KVOp.DELETE else None
            if value is None:
                self.data.pop(command.key, None)
            else:
                self.data[command.key] = value
            self.history.append(Event(self.rev, command.key, value))
            async with self.changed:
                self.changed.notify_all()
        code = ResultCode.OK if ok else ResultCode.CAS_FAILED
        result = KVResult(ok, self.rev, prev, "", code).encode()
        if command.client_id:
            self.sessions[command.client_id] = (command.seq, result)
        return result

    async def apply_payload(self, payload: bytes) -> bytes:
        """Apply one log entry's payload: a command or a group of them (a client batch)."""
        self.entries += 1
        if payload[:1] == bytes((GROUP_MAGIC,)):
            return encode_group_result(
                [await self.apply(KVCommand.decode(c)) for c in split_group(payload)]
            )
        return await self.apply(KVCommand.decode(payload))

    # the KVStateMachine read API the service uses
    def revision(self) -> int:
        return self.rev

    def get(self, key: bytes) -> tuple[bytes | None, int]:
        return self.data.get(key), self.rev

    def list_keys(self, prefix: bytes, limit: int = 0) -> list[bytes]:
        keys = sorted(k for k in self.data if k.startswith(prefix))
        return keys[:limit] if limit else keys

    def prefixes(self, prefix: bytes) -> list[bytes]:
        out = set()
        for key in self.data:
            if key.startswith(prefix):
                rest = key[len(prefix) :]
                cut = rest.find(b"/")
                out.add(prefix + (rest[: cut + 1] if cut >= 0 else rest))
        return sorted(out)

    def watch(self, prefix: bytes, start_revision: int = 0) -> DoubleWatch:
        if start_revision and start_revision < self.compacted_below:
            raise Compacted(f"revision {start_revision} is compacted")
        return DoubleWatch(self, prefix, start_revision)


class DoubleCluster:
    """Who leads, plus fault switches shared by every DoubleNode."""

    def __init__(self) -> None:
        self.kv = DoubleKV()
        self.leader_id: int | None = None
        self.addresses: dict[int, str] = {}
        self.lose_answers = 0  # apply, then fail the next N proposals with Timeout
        self.explode = False  # proposals raise an unexpected exception (a bug)
        # Members that still believe they lead but fail every proposal (a
        # leader whose disk is full): Batch answers OK with UNAVAILABLE per op.
        self.broken: set[int] = set()
        self.proposals = 0
        self.forwarded = 0  # requests a follower ran "through the leader"

    def leader_address(self) -> str | None:
        return None if self.leader_id is None else self.addresses[self.leader_id]


class DoubleNode:
    """Implements the parts of RaftNode that KVService uses."""

    def __init__(self, node_id: int, cluster: DoubleCluster, *, witness: bool = False) -> None:
        self.id = node_id
        self.cluster = cluster
        self.cluster_id = CLUSTER_ID
        self.witness = witness

    @property
    def state_machine(self) -> DoubleKV | None:
        return None if self.witness else self.cluster.kv

    @property
    def is_leader(self) -> bool:
        return self.cluster.leader_id == self.id or self.id in self.cluster.broken

    @property
    def leader_id(self) -> int | None:
        return self.cluster.leader_id

    @property
    def leader_address(self) -> str | None:
        return self.cluster.leader_address()

    def _require_leader(self, forward: bool = False) -> None:
        # Forwarding to the leader is modelled as running on the shared state
        # (what the leader would do), counted in cluster.forwarded.
        if self.is_leader:
            return
        if forward and self.leader_id is not None and not self.witness:
            self.cluster.forwarded += 1
            return
        raise NotLeader(
            "not the leader", leader_id=self.leader_id, leader_address=self.leader_address
        )

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes:
        self._require_leader(forward)
        if self.cluster.explode:
            raise RuntimeError("boom (test double)")
        self.cluster.proposals += 1
        result = await self.cluster.kv.apply_payload(command)
        if self.cluster.lose_answers > 0:
            self.cluster.lose_answers -= 1
            raise Timeout("answer lost (test double)")
        return result

    async def propose_many(
        self, commands: Sequence[bytes], *, timeout: float = 5.0, forward: bool = False
    ) -> list[bytes | BaseException]:
        # Like RaftNode.propose_many: all or nothing for leadership, a lost
        # answer loses the whole batch's answers (each command still applied).
        self._require_leader(forward)
        if self.cluster.explode:
            raise RuntimeError("boom (test double)")
        if self.id in self.cluster.broken:
            return [Unavailable("raft driver failed: no space left (test double)")] * len(commands)
        self.cluster.proposals += len(commands)
        results: list[bytes | BaseException] = [
            await self.cluster.kv.apply_payload(c) for c in commands
        ]
        if self.cluster.lose_answers > 0:
            self.cluster.lose_answers -= 1
            raise Timeout("answer lost (test double)")
        return results

    async def read_index(self, *, timeout: float = 5.0) -> int:
        if self.cluster.leader_id is None:
            raise Unavailable("no leader")
        return self.cluster.kv.rev

    def status(self) -> Any:
        members = [
            SimpleNamespace(id=i, address=a, kind="voter", role="", match=0, payload_floor=0)
            for i, a in sorted(self.cluster.addresses.items())
        ]
        return SimpleNamespace(
            id=self.id,
            role="leader" if self.is_leader else "follower",
            term=1,
            leader_id=self.leader_id,
            leader_address=self.leader_address,
            commit=self.cluster.kv.rev,
            applied=self.cluster.kv.rev,
            last_index=self.cluster.kv.rev,
            members=members,
        )

    async def add_member(
        self, node_id: int, endpoint: str, role: str = "voter", *, forward: bool = False
    ) -> None:
        self._require_leader(forward)
        self.cluster.addresses[node_id] = endpoint

    async def remove_member(self, node_id: int, *, forward: bool = False) -> None:
        self._require_leader(forward)
        self.cluster.addresses.pop(node_id, None)

    async def transfer_leadership(self, node_id: int, *, forward: bool = False) -> None:
        self._require_leader(forward)
        self.cluster.leader_id = node_id

    async def snapshot(self, *, forward: bool = False) -> int:
        return self.cluster.kv.rev


@dataclass
class Running:
    cluster: DoubleCluster
    servers: dict[int, grpc.aio.Server]
    addresses: dict[int, str]
    services: dict[int, KVService] = field(default_factory=dict)

    async def stop(self, node_id: int) -> None:
        await self.servers.pop(node_id).stop(grace=None)


@contextlib.asynccontextmanager
async def double_cluster(
    size: int = 3, leader: int | None = 1, witness: int | None = None, forward: bool = True
) -> AsyncIterator[Running]:
    """Start ``size`` real gRPC servers with KVService over DoubleNodes; stop them on exit."""
    cluster = DoubleCluster()
    servers: dict[int, grpc.aio.Server] = {}
    services: dict[int, KVService] = {}
    try:
        for node_id in range(1, size + 1):
            server = grpc.aio.server()
            port = server.add_insecure_port("127.0.0.1:0")
            cluster.addresses[node_id] = f"127.0.0.1:{port}"
            node = DoubleNode(node_id, cluster, witness=node_id == witness)
            services[node_id] = KVService(node, timeout=2.0, forward=forward)
            services[node_id].register(server)
            await server.start()
            servers[node_id] = server
        cluster.leader_id = leader
        yield Running(cluster, servers, dict(cluster.addresses), services)
    finally:
        for server in servers.values():
            await server.stop(grace=None)
