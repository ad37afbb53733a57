"""Clients of the simulated cluster: the real ``Client`` issuing a recorded history.

Each client is its own simulated process on its own host, running the real
:class:`~nexus_raft.kv.client.Client` (router, batcher, sessions, retries)
through :class:`~tests.sim_node.kvnet.SimKVStub`. Operations are puts with
unique values, linearizable gets, compare-and-swaps and deletes on a small
set of keys, recorded in a :class:`tests.lin.history.History` on the
virtual clock. Keys rotate every ``KEY_EPOCH`` virtual seconds so that each
key's history stays small enough for the linearizability search.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import TYPE_CHECKING, Any

from nexus_raft.errors import ClusterMismatch, Compacted, NexusRaftError, TooLarge
from nexus_raft.kv.client.client import Client
from tests.lin.history import History, Outcome
from tests.lin.model import OpKind
from tests.sim.checker import Violation
from tests.sim_node.loop import Process
from tests.sim_node.member import CLUSTER_ID

if TYPE_CHECKING:
    from tests.sim_node.sim import Sim

__all__ = ["CLIENT_HOST", "OPERATOR_HOST", "WATCHER_HOST", "Workload"]

CLIENT_HOST = 100
OPERATOR_HOST = 99
WATCHER_HOST = 98
KEY_EPOCH = 20.0
THINK = 0.3  # upper bound of a client's pause between operations (seconds)


def _classify(exc: BaseException) -> Outcome:
    # Refused before anything was proposed; everything else may have happened.
    if isinstance(exc, (ClusterMismatch, TooLarge, TypeError)):
        return Outcome.FAILED
    return Outcome.UNKNOWN


class Workload:
    """The recorded clients of one seed and the puts they saw acknowledged."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        loop = sim.loop
        self.history = History(clock=lambda: int(loop.time() * 1e9))
        self.acked: list[tuple[int, bytes, bytes]] = []  # (revision, key, value)
        self.stopping = False  # the writers stop
        self.watch_stopping = False  # the watcher stops
        self._done: list[asyncio.Future[None]] = []
        self._watch_done: asyncio.Future[None] | None = None
        self.ops = 0
        self.failed = 0
        self.counter: Counter[int] = Counter()
        # The watcher: every change under b"k" from revision 1 on, as the real
        # Client's WatchStream delivers it across member failures.
        self.watched: list[tuple[int, bytes, bytes | None]] = []
        self.watch_position = 0
        self.watch_compacted = False
        self.watch_restarts = 0
        self._watch_stream: Any = None

    def endpoints(self) -> list[str]:
        """The addresses of the current members (what an operator gives a client)."""
        return [m.address for _, m in sorted(self.sim.members.items()) if not m.removed]

    def client(self, host: int, name: str) -> tuple[Client, Any]:
        """A real Client living on ``host`` in its own process; returns (client, context)."""
        sim = self.sim
        sim.net.add_host(host)
        proc = Process(name)
        ctx = sim.loop.context_of(proc)
        endpoints = self.endpoints()
        client = Client(
            endpoints, timeout=5.0, attempt_timeout=1.0, cluster_id=CLUSTER_ID,
            rng=random.Random(sim.rng.getrandbits(64)), stub_factory=sim.stub_factory(host),
        )
        # The simulated stubs serve the Pipeline stream too: batch over it, as a
        # client over gRPC does (the router turns it off for stub factories).
        client._router.pipeline = True
        return client, ctx

    def start(self) -> None:
        """Start the clients (each is replaced by a fresh one, with the current
        members as its endpoints, every ``KEY_EPOCH`` seconds)."""
        sim = self.sim
        for i in range(sim.params.clients):
            done = sim.loop.create_future()
            self._done.append(done)
            rng = random.Random(sim.rng.getrandbits(64))
            self._spawn(i, rng, done)

    def start_watcher(self) -> None:
        """Start the watcher (see ``watched``)."""
        done = self._watch_done = self.sim.loop.create_future()
        client, ctx = self.client(WATCHER_HOST, "watcher")
        self.sim.loop.create_task(self._watch(client, done), context=ctx)

    async def _watch(self, client: Client, done: asyncio.Future[None]) -> None:
        endpoints = self.endpoints()
        try:
            while not self.watch_stopping and not self.watch_compacted:
                if self.endpoints() != endpoints:
                    # The members changed: watch through a client that knows them,
                    # as an operator would reconfigure it (and resume where we were).
                    await client.close()
                    endpoints = self.endpoints()
                    client, _ = self.client(WATCHER_HOST, "watcher")
                stream = self._watch_stream = client.watch(
                    b"k", start_revision=self.watch_position + 1)
                try:
                    async for event in stream:
                        if event.revision <= self.watch_position:
                            self.sim.violate(Violation(
                                "watch order",
                                f"the watch delivered revision {event.revision} after "
                                f"{self.watch_position}"))
                            return
                        self.watch_position = event.revision
                        self.watched.append((event.revision, event.key, event.value))
                        if self.watch_stopping:
                            break
                except Compacted:
                    self.watch_compacted = True
                except NexusRaftError:
                    self.watch_restarts += 1  # nobody served it for a while: watch again
                    await asyncio.sleep(0.5)
                finally:
                    await stream.close()
                if self.watch_stopping:
                    return
        finally:
            await client.close()
            if not done.done():
                done.set_result(None)

    def _spawn(self, cid: int, rng: random.Random, done: asyncio.Future[None]) -> None:
        client, ctx = self.client(CLIENT_HOST + cid, f"client{cid}")
        self.sim.loop.create_task(self._run(cid, client, rng, done), context=ctx)

    def watched_state(self) -> dict[bytes, bytes]:
        """The keys under b"k" as the watcher's events, replayed in order, leave them."""
        state: dict[bytes, bytes] = {}
        for _, key, value in self.watched:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        return state

    async def stop(self) -> None:
        """Let every writer finish its operation in flight, then close them."""
        self.stopping = True
        for done in self._done:
            await done
        self.history.close()

    async def stop_watcher(self) -> None:
        """Stop the watcher."""
        self.watch_stopping = True
        if self._watch_stream is not None:
            await self._watch_stream.close()
        if self._watch_done is not None:
            await self._watch_done

    def key(self, rng: random.Random) -> bytes:
        """A key of the current epoch."""
        epoch = int(self.sim.loop.time() / KEY_EPOCH)
        return f"k{epoch}/{rng.randrange(self.sim.params.keys)}".encode()

    async def _run(self, cid: int, client: Client, rng: random.Random,
                   done: asyncio.Future[None]) -> None:
        seen: dict[bytes, bytes | None] = {}
        epoch = int(self.sim.loop.time() / KEY_EPOCH)
        renew = False
        try:
            while not self.stopping:
                if int(self.sim.loop.time() / KEY_EPOCH) != epoch:
                    renew = True
                    return
                self.counter[cid] += 1
                key = self.key(rng)
                value = f"c{cid}-{self.counter[cid]}".encode()
                await self.one(cid, client, rng, key, value, seen)
                await asyncio.sleep(rng.uniform(0.0, THINK))
        finally:
            await client.close()
            if renew and not self.stopping:
                self.sim.loop.call_soon(self._spawn, cid, rng, done, context=self.sim.root)
            elif not done.done():
                done.set_result(None)

    async def one(self, cid: int, client: Client, rng: random.Random, key: bytes,
                  value: bytes, seen: dict[bytes, bytes | None]) -> None:
        """One recorded operation (errors are recorded, never raised)."""
        h = self.history
        r = rng.random()
        self.ops += 1
        try:
            if r < 0.35:
                rev = await h.record(cid, OpKind.PUT, key, lambda: client.put(key, value),
                                     value=value, output=lambda _: None, classify=_classify)
                self.acked.append((rev, key, value))
            elif r < 0.7:
                got = await h.record(cid, OpKind.GET, key, lambda: client.get(key))
                seen[key] = got
            elif r < 0.88:
                expected = seen.get(key)
                await h.record(cid, OpKind.CAS, key, lambda: client.cas(key, expected, value),
                               value=value, expected=expected, classify=_classify)
            else:
                await h.record(cid, OpKind.DELETE, key, lambda: client.delete(key),
                               classify=_classify)
        except NexusRaftError:
            self.failed += 1
