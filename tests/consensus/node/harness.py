"""In-process clusters of real RaftNodes for the node tests.

Every node has its own LevelDB store under the test's tmp_path and serves
real gRPC on 127.0.0.1; all nodes share the test's event loop. Helpers poll
with deadlines (no fixed sleeps) and ``Cluster.close()`` always shuts every
node down.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import NexusRaftError, NotLeader, ProposalDropped, Unavailable
from nexus_raft.kv.commands import KVCommand, KVOp
from nexus_raft.kv.state_machine import KVStateMachine

# Default timing (200-400 ms election timeouts): shorter ones make elections
# flap when the shared CI box is saturated.
FAST = {"tick_interval": 0.02, "election_ticks": 10, "heartbeat_ticks": 2}


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def put(key: str, value: bytes) -> bytes:
    """An encoded KV put command."""
    return KVCommand(KVOp.PUT, key.encode(), value).encode()


async def wait_until(pred: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
    """Poll ``pred`` every 10 ms until it holds; AssertionError at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.01)


class Cluster:
    """Nodes 1..n (``witnesses`` among them) with fast timing, in one process."""

    def __init__(self, root: Path, n: int = 3, *, witnesses: frozenset[int] = frozenset(),
                 **overrides: object) -> None:
        self.root = root
        ports = free_ports(n + 2)
        self.spare_ports = ports[n:]
        self.peers = {i + 1: f"127.0.0.1:{ports[i]}" for i in range(n)}
        self.witnesses = witnesses
        self.cluster_id = "test-cluster"
        self.overrides: dict[str, object] = {**FAST, **overrides}
        self.nodes: dict[int, RaftNode] = {}

    def config(self, nid: int, **extra: object) -> NodeConfig:
        """The configuration of node ``nid``."""
        opts = {**self.overrides, **extra}
        return NodeConfig(
            id=nid, listen=self.peers[nid], peers=dict(self.peers),
            data_dir=self.root / f"n{nid}", witnesses=self.witnesses,
            cluster_id=self.cluster_id, **opts,  # type: ignore[arg-type]
        )

    async def start(self, nid: int, **extra: object) -> RaftNode:
        """Start (or restart) node ``nid`` from its data dir."""
        cfg = self.config(nid, **extra)
        sm = None if nid in self.witnesses else KVStateMachine()
        node = RaftNode(cfg, sm)
        self.nodes[nid] = node
        await node.start()
        return node

    async def start_all(self) -> None:
        """Start every configured node."""
        for nid in self.peers:
            if nid not in self.nodes:
                await self.start(nid)

    async def stop(self, nid: int) -> None:
        """Shut node ``nid`` down (its data dir stays)."""
        node = self.nodes.pop(nid, None)
        if node is not None:
            await node.shutdown()

    async def close(self) -> None:
        """Shut every node down."""
        for nid in list(self.nodes):
            await self.stop(nid)

    def live(self) -> list[RaftNode]:
        """Running nodes."""
        return list(self.nodes.values())

    async def leader(self, timeout: float = 8.0) -> RaftNode:
        """The one running node that is leader (waits until exactly one is)."""
        found: list[RaftNode] = []

        def one() -> bool:
            found[:] = [n for n in self.live() if n.is_leader]
            return len(found) == 1

        await wait_until(one, timeout, "a single leader")
        return found[0]

    async def propose(self, command: bytes, timeout: float = 8.0) -> bytes:
        """Propose through whoever leads, retrying across leader changes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            leader = await self.leader(max(0.1, deadline - loop.time()))
            try:
                return await leader.propose(command, timeout=max(0.1, deadline - loop.time()))
            except NexusRaftError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)

    async def add_member(self, nid: int, endpoint: str, role: str = "voter",
                         timeout: float = 30.0) -> None:
        """Add a member through whoever leads, as a client does (see :meth:`_admin`)."""
        await self._admin(lambda n, t: n.add_member(nid, endpoint, role, timeout=t), timeout)

    async def remove_member(self, nid: int, timeout: float = 30.0) -> None:
        """Remove a member through whoever leads, as a client does (see :meth:`_admin`)."""
        await self._admin(lambda n, t: n.remove_member(nid, timeout=t), timeout)

    async def _admin(self, call: Callable[[RaftNode, float], Awaitable[None]],
                     timeout: float) -> None:
        """Run a configuration change on the leader; a leader that lost its lead
        meanwhile, or a new one not ready yet, refuses it before appending
        anything (NotLeader, Unavailable), or its entry was overwritten
        (ProposalDropped): then it goes to the next leader. On a loaded box
        leadership can move at any time (a test that kept the first leader
        it saw failed with NotLeader)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            leader = await self.leader(max(0.1, deadline - loop.time()))
            try:
                return await call(leader, max(0.1, deadline - loop.time()))
            except (NotLeader, Unavailable, ProposalDropped):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def published(self, timeout: float = 30.0) -> None:
        """Wait until every running node has published its member attributes.

        Each node proposes its own attributes entry after it starts (and
        again after a proposal that timed out); a test that counts log
        entries, or publishes attributes itself, waits for them first.
        """
        await wait_until(
            lambda: all(n._publisher is not None and n._publisher.done.is_set()
                        for n in self.live()),
            timeout, "every node published its attributes",
        )  # fmt: skip

    async def wait_applied(self, index: int, nodes: list[RaftNode] | None = None,
                           timeout: float = 8.0) -> None:
        """Wait until every node in ``nodes`` (default: running full nodes) applied ``index``."""
        targets = nodes if nodes is not None else [
            n for n in self.live() if n.state_machine is not None
        ]
        await wait_until(lambda: all(n.status().applied >= index for n in targets), timeout,
                         f"applied >= {index}")


def value_of(node: RaftNode, key: str) -> bytes | None:
    """The value of ``key`` in ``node``'s KV state machine."""
    sm = node.state_machine
    assert isinstance(sm, KVStateMachine)
    try:
        return sm.get(key.encode())[0]
    except Unavailable:  # a snapshot restore is in progress
        return None
