"""The simulated network: hosts, links with faults, unary calls and stream connections.

Every message is a protobuf object copied through its wire bytes at each hop
(so no two processes ever share one), and travels for a random virtual
latency. Faults, all decided by the seed's random source:

- loss: a unary request or answer vanishes (the caller hits its deadline);
  on a stream connection a lost message breaks the connection (TCP does not
  lose messages, it resets), which reports every unanswered request lost;
- duplication: a unary request is delivered twice (a retransmitted RPC);
  the second copy's answer is thrown away;
- delay and reordering: latencies are random, so unary calls overtake each
  other; a connection stays FIFO (as TCP), but a new connection may
  overtake an old one's messages still in flight;
- cuts: a directed link (a partition is two cuts, a one-way cut one); a
  connection crossing a newly cut link breaks after a random delay;
- a dead process: nothing answers on its address (connection refused) and
  its open connections and calls fail with a reset.

Deliveries run in the receiving process's context, answers in the caller's,
so whatever a killed process would still have received or answered is
dropped by the loop (see :mod:`tests.sim_node.loop`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.sim_node.loop import Process, VirtualLoop

__all__ = ["END", "Conn", "Endpoint", "Fail", "Refused", "SimNetwork"]

Fail = Callable[[str, str], BaseException]
"""Makes the caller's exception: fail(kind, detail), kind in unavailable/deadline/internal/..."""


class Refused(Exception):
    """Raised by a serving function to answer with a specific failure ``kind``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


END = object()
"""Marks the end of a client-streaming call on a connection (not a message)."""


def copy_message(m: Any) -> Any:
    """A protobuf message through its wire bytes (what the other end really gets)."""
    return type(m).FromString(m.SerializeToString())


def _unchecked(member: int, candidate: int, answer: Any) -> None:
    """No observer (the network's own tests)."""


@dataclass(eq=False)
class Endpoint:
    """A process listening on its host's address: the Raft peer service and the KV service."""

    host: int
    process: Process
    ctx: contextvars.Context
    cluster_id: str
    raft: Any = None  # the RaftHandler (PeerHandler)
    kv: Any = None  # the KVService
    calls: dict[int, tuple[asyncio.Future[Any], Fail, contextvars.Context]] = field(
        default_factory=dict
    )
    conns: dict[int, Conn] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)  # PeerRefused answered, by kind
    # Requests handed an answer that is not theirs (MismatchedAnswer): always a bug.
    mismatched: list[str] = field(default_factory=list)
    # Sees every vote answer before it leaves (the Sim's persist-before-send check).
    vote_sent: Callable[[int, int, Any], None] = _unchecked


@dataclass(slots=True)
class Profile:
    """Link behaviour: per-message loss and duplication, latency range, rare slow messages."""

    loss: float = 0.0
    dup: float = 0.0
    lat_lo: float = 0.0002
    lat_hi: float = 0.002
    slow: float = 0.0  # probability of a much slower message
    slow_hi: float = 0.05


class SimNetwork:
    """Hosts by address, links, and the two ways to talk (see the module docstring)."""

    def __init__(self, loop: VirtualLoop, rng: random.Random, stats: Counter[str]) -> None:
        self.loop = loop
        self.rng = rng
        self.stats = stats
        self.profile = Profile()
        self.addresses: dict[str, int] = {}
        self.listening: dict[int, Endpoint] = {}
        self.cut: set[tuple[int, int]] = set()
        self.conns: dict[int, Conn] = {}
        self._ids = itertools.count(1)
        self.hit: Callable[[str], None] = lambda row: None  # coverage rows (set by the Sim)
        self.refusals: Counter[str] = Counter()  # every member's PeerRefused answers, by kind
        self.mismatched: list[str] = []  # every member's MismatchedAnswer, for the Sim's poll
        self.vote_sent: Callable[[int, int, Any], None] = _unchecked  # set by the Sim

    # --- topology ------------------------------------------------------------------------

    @staticmethod
    def address(host: int) -> str:
        """The ``host:port`` of host ``host``."""
        return f"10.0.{host // 256}.{host % 256}:7000"

    def add_host(self, host: int) -> str:
        """Register host ``host``; returns its address."""
        addr = self.address(host)
        self.addresses[addr] = host
        return addr

    def host_of(self, target: str) -> int | None:
        """The host behind ``target`` (``host:port``, ``http://`` accepted)."""
        if "://" in target:
            target = target.split("://", 1)[1]
        return self.addresses.get(target)

    def listen(self, ep: Endpoint) -> None:
        """``ep`` now answers on its host's address."""
        self.listening[ep.host] = ep

    def down(self, ep: Endpoint) -> None:
        """``ep``'s process died: its address refuses, its calls and connections reset."""
        if self.listening.get(ep.host) is ep:
            del self.listening[ep.host]
        calls, ep.calls = ep.calls, {}
        for fut, fail, ctx in calls.values():
            self.loop.call_later(self.latency(), _settle, fut, fail("unavailable", "reset"),
                                 context=ctx)
        for conn in list(ep.conns.values()):
            conn.fail("the peer process died")

    def set_cut(self, src: int, dst: int, cut: bool) -> None:
        """Cut (or restore) the directed link ``src -> dst``."""
        if not cut:
            self.cut.discard((src, dst))
            return
        if (src, dst) in self.cut:
            return
        self.cut.add((src, dst))
        for conn in list(self.conns.values()):
            if {conn.src, conn.dst} == {src, dst}:
                self.loop.call_later(self.rng.uniform(0.0, 1.0), conn.fail, "link cut")

    def heal(self) -> None:
        """Restore every link."""
        self.cut.clear()

    def latency(self) -> float:
        """One message's travel time."""
        p = self.profile
        if p.slow and self.rng.random() < p.slow:
            return self.rng.uniform(p.lat_hi, p.slow_hi)
        return self.rng.uniform(p.lat_lo, p.lat_hi)

    def passes(self, src: int, dst: int) -> bool:
        """Whether one message from ``src`` reaches ``dst`` (cuts and random loss)."""
        if (src, dst) in self.cut:
            self.stats["net: dropped at a cut"] += 1
            return False
        if self.profile.loss and self.rng.random() < self.profile.loss:
            self.stats["net: lost"] += 1
            return False
        return True

    # --- unary calls ----------------------------------------------------------------------

    async def call(
        self,
        src: int,
        target: str,
        request: Any,
        serve: Callable[[Endpoint, Any], Awaitable[Any]],
        timeout: float | None,
        fail: Fail,
    ) -> Any:
        """Send ``request`` to ``target``; ``serve(endpoint, copy)`` runs there; its answer back.

        Raises ``fail("deadline", ...)`` when no answer arrives within
        ``timeout``, ``fail("unavailable", ...)`` when nothing listens or the
        process died mid-call, ``fail("internal", ...)`` when ``serve`` raised.
        """
        loop = self.loop
        host = self.host_of(target)
        if host is None:
            raise fail("unavailable", f"no route to {target}")
        fut: asyncio.Future[Any] = loop.create_future()
        caller = contextvars.copy_context()
        self.stats["net: unary"] += 1
        self._request(src, host, fut, request, serve, fail, caller, False)
        if self.profile.dup and self.rng.random() < self.profile.dup:
            self.stats["net: duplicated"] += 1
            self._request(src, host, loop.create_future(), request, serve, fail, caller, True)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire, fut, fail, timeout)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()

    def _request(self, src: int, host: int, fut: asyncio.Future[Any], request: Any,
                 serve: Callable[[Endpoint, Any], Awaitable[Any]], fail: Fail,
                 caller: contextvars.Context, dup: bool) -> None:
        if not self.passes(src, host):
            return
        ep = self.listening.get(host)
        if ep is None:
            if not dup:
                self.loop.call_later(2 * self.latency(), _settle, fut,
                                     fail("unavailable", "connection refused"), context=caller)
            return
        self.loop.call_later(self.latency(), self._arrive, ep, src, fut, copy_message(request),
                             serve, fail, caller, dup, context=ep.ctx)

    def _arrive(self, ep: Endpoint, src: int, fut: asyncio.Future[Any], request: Any,
                serve: Callable[[Endpoint, Any], Awaitable[Any]], fail: Fail,
                caller: contextvars.Context, dup: bool) -> None:
        if self.listening.get(ep.host) is not ep:
            return
        call_id = next(self._ids)
        if not dup:
            ep.calls[call_id] = (fut, fail, caller)
        task = self.loop.create_task(serve(ep, request))
        task.add_done_callback(
            lambda t: self._answer(t, ep, src, call_id, fut, fail, caller, dup)
        )

    def _answer(self, task: asyncio.Task[Any], ep: Endpoint, src: int, call_id: int,
                fut: asyncio.Future[Any], fail: Fail, caller: contextvars.Context,
                dup: bool) -> None:
        ep.calls.pop(call_id, None)
        if dup or task.cancelled() or not ep.process.alive:
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, Exception):
            return  # the serving process crashed (SimulatedCrash): no answer
        result: Any
        if isinstance(exc, Refused):
            result = fail(exc.kind, str(exc))
        elif exc is not None:
            result = fail("internal", f"{type(exc).__name__}: {exc}")
        else:
            result = task.result()
        if not self.passes(ep.host, src):
            return
        if exc is None:
            result = copy_message(result)
        self.loop.call_later(self.latency(), _settle, fut, result, context=caller)

    # --- connections ---------------------------------------------------------------------

    def connect(self, src: int, target: str) -> Conn:
        """A new stream connection from ``src`` to ``target`` (it may fail at once)."""
        host = self.host_of(target)
        conn = Conn(self, next(self._ids), src, host if host is not None else -1,
                    contextvars.copy_context())
        ep = self.listening.get(host) if host is not None else None
        if ep is None or (src, conn.dst) in self.cut:
            self.loop.call_later(2 * self.latency(), conn.fail, "connection refused")
            return conn
        conn.ep = ep
        ep.conns[conn.id] = conn
        self.conns[conn.id] = conn
        self.stats["net: connections"] += 1
        return conn


class Conn:
    """One stream connection: FIFO both ways, broken as a whole.

    ``on_server`` / ``on_client`` receive the messages; ``on_broken`` is told
    once, on the client side, why the connection ended (``server_broken`` on
    the server side).
    """

    def __init__(self, net: SimNetwork, conn_id: int, src: int, dst: int,
                 client_ctx: contextvars.Context) -> None:
        self.net = net
        self.id = conn_id
        self.src = src
        self.dst = dst
        self.client_ctx = client_ctx
        self.ep: Endpoint | None = None
        self.broken = False
        self._up_at = 0.0
        self._down_at = 0.0
        self.on_server: Callable[[Any], None] | None = None
        self.on_client: Callable[[Any], None] | None = None
        self.on_broken: Callable[[str, str], None] | None = None
        self.server_broken: Callable[[str], None] | None = None

    def _at(self, last: float) -> float:
        return max(self.net.loop.time() + self.net.latency(), last)

    def to_server(self, message: Any) -> None:
        """Send ``message`` to the server end (in order); a loss breaks the connection."""
        if self.broken or self.ep is None:
            return
        if not self.net.passes(self.src, self.dst):
            self.fail("message lost")
            return
        self._up_at = self._at(self._up_at)
        self.net.loop.call_at(self._up_at, self._deliver_up,
                              message if message is END else copy_message(message),
                              context=self.ep.ctx)

    def to_client(self, message: Any) -> None:
        """Send ``message`` to the client end (in order); a loss breaks the connection."""
        if self.broken:
            return
        if not self.net.passes(self.dst, self.src):
            self.fail("message lost")
            return
        self._down_at = self._at(self._down_at)
        self.net.loop.call_at(self._down_at, self._deliver_down,
                              message if message is END else copy_message(message),
                              context=self.client_ctx)

    def _deliver_up(self, message: Any) -> None:
        if not self.broken and self.on_server is not None:
            self.on_server(message)

    def _deliver_down(self, message: Any) -> None:
        if not self.broken and self.on_client is not None:
            self.on_client(message)

    def fail(self, why: str, kind: str = "unavailable") -> None:
        """Break the connection: both ends learn it (the client after a round trip)."""
        if self.broken:
            return
        self.broken = True
        self.net.conns.pop(self.id, None)
        loop = self.net.loop
        if self.ep is not None:
            self.ep.conns.pop(self.id, None)
            if self.server_broken is not None:
                loop.call_soon(self.server_broken, why, context=self.ep.ctx)
        if self.on_broken is not None:
            loop.call_later(self.net.latency(), self.on_broken, why, kind,
                            context=self.client_ctx)

    def close(self) -> None:
        """The client closed the connection (the server end is told)."""
        self.fail("closed by the client")


def _settle(fut: asyncio.Future[Any], outcome: Any) -> None:
    if fut.done():
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)


def _expire(fut: asyncio.Future[Any], fail: Fail, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(fail("deadline", f"no answer within {timeout:.3f}s"))
