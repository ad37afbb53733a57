"""Leader-following RPC routing for the KV client.

:class:`Router` owns one gRPC channel per member address and sends a unary KV
RPC to the member most likely to serve it, retrying until the caller's
deadline:

* ``NOT_LEADER`` naming a leader: go there at once (no backoff; a hop limit
  stops a ping-pong between two members with stale views);
* ``NOT_LEADER`` without a leader (an election is under way): ask the next
  member after a short backoff (10 ms doubling to 50 ms), so the new leader
  is found within a few tens of milliseconds of its election;
* ``UNAVAILABLE``, ``TIMEOUT``, a refused connection or a per-attempt
  deadline: try the next member after an exponential backoff with jitter
  (20 ms doubling to 500 ms);
* any other error code is final and raised as its ``NexusRaftError``.

Every retry re-sends the same request message, so a write keeps its
(client_id, seq) and the state machine applies it at most once. A per-attempt
deadline (default 1 s) keeps one paused or partitioned member from eating the
whole budget, and a member that failed to answer is *suspect* for a while
(``SUSPECT_SECONDS``): later calls do not start there, and a ``NOT_LEADER``
hint naming it is not followed (it is a stale view of a dead leader), so a
dead or silent member costs one attempt, not one per call.

Follower forwarding: a write answered OK by a follower names the leader it
was forwarded to. The router keeps sending to that follower (it works) and
checks in the background whether the leader answers this client directly
(a ``Status`` probe); only then does it switch to the leader. A client that
cannot reach the leader so never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from nexus_raft.errors import NexusRaftError, NotLeader, Timeout, TooLarge, Unavailable
from nexus_raft.kv.client.pipeline import Pipe
from nexus_raft.kv.wire import (
    NOT_LEADER,
    OK,
    RETRYABLE_CODES,
    exception_from_error,
    kv_pb2,
    kv_pb2_grpc,
)
from nexus_raft.transport.address import parse_endpoint
from nexus_raft.transport.options import channel_options

__all__ = ["Router", "grpc_failure", "normalize_endpoint"]

_log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.02
BACKOFF_MAX = 0.5
ELECTION_BACKOFF_INITIAL = 0.01
ELECTION_BACKOFF_MAX = 0.05
MAX_REDIRECTS = 4
"""Redirects followed without backoff before the router starts to back off."""
SUSPECT_SECONDS = 2.0
"""How long a member that failed to answer is avoided (not started with, hints to it ignored)."""
PROBE_INTERVAL = 2.0
"""Least time between two background probes of the same leader address."""

# gRPC failures after which another member (or a later attempt) may succeed.
_RETRY_GRPC = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNIMPLEMENTED,  # e.g. a witness without the KV service
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


def _now() -> float:
    # The loop's clock (a simulator may run it on virtual time); suspicion
    # outlives one call, and a client lives on one loop.
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


def normalize_endpoint(endpoint: str) -> tuple[str, bool]:
    """``[http(s)://]host:port`` -> (``host:port``, tls); ``ValueError`` if malformed."""
    host, port, tls = parse_endpoint(endpoint)
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}", tls


class Backoff:
    """Exponential backoff with full jitter; :meth:`reset` after a success."""

    def __init__(
        self,
        rng: random.Random,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
    ) -> None:
        self._rng = rng
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._next = self._initial

    def delay(self) -> float:
        """The next delay to sleep (doubles up to the maximum)."""
        current = self._next
        self._next = min(self._maximum, self._next * 2)
        return current / 2 + self._rng.random() * current / 2


class Router:
    """Channels to the members and the current guess of who leads.

    ``stub_factory`` (a seam for the whole-node simulator; production leaves
    it unset) makes the KV stub for a ``host:port`` target instead of a gRPC
    channel: its methods take ``(request, timeout=...)`` and raise
    ``grpc.aio.AioRpcError`` like a real stub's.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        attempt_timeout: float,
        tls: Any = None,
        rng: random.Random | None = None,
        stub_factory: Callable[[str], Any] | None = None,
    ) -> None:
        known: list[str] = []
        any_tls = False
        for endpoint in endpoints:
            target, is_tls = normalize_endpoint(endpoint)
            any_tls = any_tls or is_tls
            if target not in known:
                known.append(target)
        if not known:
            raise ValueError("at least one endpoint is required")
        self._known = known
        self._tls = tls
        self._use_tls = any_tls or tls is not None
        self._attempt_timeout = attempt_timeout
        self._rng = rng or random.Random()
        self._stub_factory = stub_factory
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, Any] = {}
        # Batch calls go over one Pipeline stream per member (not with a
        # simulator's stubs, which speak unary calls only).
        self._pipes: dict[str, Pipe] = {}
        self.pipeline = stub_factory is None
        # _leader: the member believed to lead; _route: where requests go
        # first (the leader, or a follower that forwards for us when the
        # leader did not answer this client directly).
        self._leader: str | None = None
        self._route: str | None = None
        self._cursor = 0
        self._suspect: dict[str, float] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._last_probe: dict[str, float] = {}
        # The cluster id every request carries (stamped in call()). Empty:
        # not known yet; with ``learn_cluster`` the first call asks its
        # target's Status first and adopts its cluster (see Client.cluster_id).
        self.cluster_id = ""
        self.learn_cluster = False
        self._closed = False

    # --- state ----------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Every member address known so far (given ones first, learned ones after)."""
        return list(self._known)

    @property
    def leader(self) -> str | None:
        """The address believed to lead, or None while unknown."""
        return self._leader

    @property
    def rng(self) -> random.Random:
        """The router's random source (also used for backoff jitter elsewhere)."""
        return self._rng

    @property
    def attempt_timeout(self) -> float:
        """Deadline of one RPC attempt to one member."""
        return self._attempt_timeout

    @property
    def route(self) -> str | None:
        """Where the next request goes first (the leader or a forwarding member), if known."""
        return self._route

    def is_suspect(self, target: str) -> bool:
        """Whether ``target`` failed to answer within the last ``SUSPECT_SECONDS``."""
        until = self._suspect.get(target)
        if until is None:
            return False
        if until <= _now():
            del self._suspect[target]
            return False
        return True

    def current(self) -> str:
        """Where to send the next request: the route if known, else the next healthy member."""
        if self._route is not None and not self.is_suspect(self._route):
            return self._route
        n = len(self._known)
        for step in range(n):
            target = self._known[(self._cursor + step) % n]
            if not self.is_suspect(target):
                self._cursor += step
                return target
        return self._known[self._cursor % n]

    def learn(self, address: str) -> str:
        """Add ``address`` to the known members (if new); returns its normalized form."""
        target, _ = normalize_endpoint(address)
        if target not in self._known:
            self._known.append(target)
        return target

    def note_leader(self, address: str | None) -> None:
        """Remember ``address`` as the leader and route there (None: unknown).

        A suspect address (it just failed to answer this client) is not
        routed to: a member naming it most likely has a stale view.
        """
        if address is None:
            self._leader = None
            self._route = None
            return
        target = self.learn(address)
        self._leader = target
        if not self.is_suspect(target):
            self._route = target

    def note_served(self, target: str, leader_address: str | None) -> None:
        """``target`` served a request that must run on the leader.

        ``leader_address`` is the leader it forwarded to (None or ``target``:
        it leads itself). Requests keep going to ``target``; a forwarding
        member is replaced by the leader once a background probe shows the
        leader answers this client.
        """
        self._route = target
        self._suspect.pop(target, None)
        if not leader_address:
            self._leader = target
            return
        leader = self.learn(leader_address)
        self._leader = leader
        if leader != target:
            self._probe(leader)

    def mark_failed(self, target: str, *, unreachable: bool = False) -> None:
        """``target`` could not serve: stop routing there and move the cursor past it.

        ``unreachable``: it did not answer at all; avoid it for ``SUSPECT_SECONDS``.
        """
        if self._leader == target:
            self._leader = None
        if self._route == target:
            self._route = None
        if unreachable:
            self._suspect[target] = _now() + SUSPECT_SECONDS
        if target in self._known and self._known[self._cursor % len(self._known)] == target:
            self._cursor += 1

    def _probe(self, leader: str) -> None:
        """Check in the background whether ``leader`` answers us; route there if it leads."""
        if self._closed or leader in self._probes or self.is_suspect(leader):
            return
        now = _now()
        if now - self._last_probe.get(leader, -PROBE_INTERVAL) < PROBE_INTERVAL:
            return
        self._last_probe[leader] = now
        task = asyncio.get_running_loop().create_task(self._run_probe(leader))
        self._probes[leader] = task
        task.add_done_callback(lambda _: self._probes.pop(leader, None))

    async def _run_probe(self, leader: str) -> None:
        request = kv_pb2.StatusRequest(cluster_id=self.cluster_id)
        try:
            resp = await self.stub(leader).Status(request, timeout=self._attempt_timeout)
        except grpc.aio.AioRpcError:
            self._suspect[leader] = _now() + SUSPECT_SECONDS
            return
        except (Unavailable, RuntimeError):  # closed meanwhile
            return
        if resp.error.code == OK and resp.leader_id and resp.leader_id == resp.id:
            self._leader = self._route = leader

    async def _learn_cluster(self, target: str, timeout: float) -> None:
        """Adopt ``target``'s cluster id before the first request goes out.

        A request without a cluster id is served by a member of any cluster:
        a client whose endpoints name members of two clusters would write to
        both. Once this client has a cluster id, a member of another cluster
        refuses its requests (CLUSTER_MISMATCH).
        """
        resp = await self.stub(target).Status(kv_pb2.StatusRequest(), timeout=timeout)
        if not self.cluster_id and resp.error.code == OK and resp.cluster_id:
            self.cluster_id = resp.cluster_id

    async def _pipelined(self, target: str, request: Any, timeout: float) -> Any:
        """A Batch call over ``target``'s Pipeline stream (unary if it has none)."""
        pipe = self._pipes.get(target)
        if pipe is None:
            pipe = self._pipes[target] = Pipe(self.stub(target))
        if pipe.unimplemented:
            return await self.stub(target).Batch(request, timeout=timeout)
        try:
            return await pipe.call(request, timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        # A member without the Pipeline RPC: nothing was served, ask it the old way.
        return await self.stub(target).Batch(request, timeout=timeout)

    def failure(self, err: grpc.aio.AioRpcError) -> str:
        """``grpc_failure`` with a hint that fits this client's TLS settings."""
        if not self._use_tls:
            hint = "if the members serve TLS, connect with TLS (nexusctl --ca)"
        elif self._tls is None or self._tls.cert is None:
            hint = "if the members require client certificates, give one (nexusctl --cert/--key)"
        else:
            hint = "the member may not accept this client certificate (is it signed by its CA?)"
        return grpc_failure(err, hint)

    def stub(self, target: str) -> Any:
        """The KV stub for ``target`` (one channel per address, created on first use)."""
        if self._closed:
            raise Unavailable("the client is closed")
        stub = self._stubs.get(target)
        if stub is None and self._stub_factory is not None:
            stub = self._stubs[target] = self._stub_factory(target)
        elif stub is None:
            options = channel_options()
            if self._use_tls:
                creds = (
                    self._tls.channel_credentials()
                    if self._tls is not None
                    else grpc.ssl_channel_credentials()
                )
                channel = grpc.aio.secure_channel(target, creds, options=options)
            else:
                channel = grpc.aio.insecure_channel(target, options=options)
            self._channels[target] = channel
            stub = kv_pb2_grpc.KVStub(channel)
            self._stubs[target] = stub
        return stub

    async def close(self) -> None:
        """Stop probes and close every channel (idempotent)."""
        self._closed = True
        probes = list(self._probes.values())
        for task in probes:
            task.cancel()
        for task in probes:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        pipes = list(self._pipes.values())
        self._pipes.clear()
        for pipe in pipes:
            await pipe.close()
        channels = list(self._channels.values())
        self._channels.clear()
        self._stubs.clear()
        for channel in channels:
            await channel.close(grace=None)

    # --- calls ----------------------------------------------------------------------

    async def call(
        self,
        method: str,
        request: Any,
        *,
        deadline: float,
        endpoint: str | None = None,
        learn_leader: bool = False,
        fail_fast: bool = False,
    ) -> tuple[Any, str]:
        """Send ``request`` with ``method`` until a member answers OK; return (response, target).

        ``endpoint``: only ever ask that member (NOT_LEADER is then final).
        ``fail_fast`` (with ``endpoint``): a member that cannot be reached
        (refused, reset, silent for the attempt timeout) costs one attempt
        and the call raises, instead of retrying it until the deadline; an
        answer with a retryable error code is still retried.
        ``learn_leader``: the request must run on the leader (writes and
        membership changes), so an OK answer means the target leads or
        forwarded to the leader it names (see :meth:`note_served`); reads and
        status may be answered by any member and teach nothing.
        """
        loop = asyncio.get_running_loop()
        backoff = Backoff(self._rng)
        election = Backoff(self._rng, ELECTION_BACKOFF_INITIAL, ELECTION_BACKOFF_MAX)
        fixed = normalize_endpoint(endpoint)[0] if endpoint is not None else None
        redirects = 0
        unreachable: set[str] = set()  # failed during this call: redirects there are stale
        last: NexusRaftError | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _give_up(method, last)
            target = fixed or self.current()
            attempt = min(remaining, self._attempt_timeout)
            try:
                if not self.cluster_id and self.learn_cluster:
                    await self._learn_cluster(target, attempt)
                if self.cluster_id and not request.cluster_id:
                    request.cluster_id = self.cluster_id
                if method == "Batch" and self.pipeline:
                    resp = await self._pipelined(target, request, attempt)
                else:
                    resp = await getattr(self.stub(target), method)(request, timeout=attempt)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise TooLarge(f"{target}: request too large: {err.details()}") from None
                if code not in _RETRY_GRPC:
                    raise Unavailable(f"{target}: {self.failure(err)}") from None
                if code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    last = Unavailable(f"{target} is unreachable ({self.failure(err)})")
                elif attempt >= self._attempt_timeout:
                    last = Timeout(f"{target} did not answer within {attempt:.2f}s")
                elif last is None:
                    last = Timeout(f"{target} did not answer before the deadline")
                # else: the call's own deadline cut this attempt short (a
                # member given a few milliseconds says nothing): the earlier
                # failure, e.g. "no leader", stays the reason given up for.
                _log.debug("%s to %s failed: %s", method, target, last)
                unreachable.add(target)
                self.mark_failed(target, unreachable=True)
                if fixed is not None and fail_fast:
                    raise last from None
                if fixed is None and len(self._known) > len(unreachable):
                    continue  # another member may answer at once: no backoff
                await _sleep_within(backoff.delay(), deadline, loop)
                continue
            error = resp.error
            if error.code == OK:
                if learn_leader and fixed is None:
                    self.note_served(target, error.leader_address or None)
                return resp, target
            exc = exception_from_error(error, where=target)
            if error.code not in RETRYABLE_CODES or (
                fixed is not None and error.code == NOT_LEADER
            ):
                raise exc
            last = exc
            if error.code == NOT_LEADER and isinstance(exc, NotLeader):
                named = normalize_endpoint(exc.leader_address)[0] if exc.leader_address else None
                if (
                    named is not None
                    and named != target
                    and named not in unreachable
                    and not self.is_suspect(named)
                ):
                    self.note_leader(exc.leader_address)
                    redirects += 1
                    if redirects <= MAX_REDIRECTS:
                        continue
                else:
                    # No leader known, or only one that just failed to answer
                    # us (a stale view): an election is under way.
                    self.mark_failed(target)
                    await _sleep_within(election.delay(), deadline, loop)
                    continue
            elif fixed is None:
                self.mark_failed(target)
            await _sleep_within(backoff.delay(), deadline, loop)


async def _sleep_within(delay: float, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
    await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))


# What a user calls each RPC in a message (never the RPC's own name).
_WHAT = {"Get": "the read", "Batch": "the request", "Status": "the status request",
         "Members": "the members request", "ListKeys": "the listing", "Prefixes": "the listing",
         "Put": "the write", "Delete": "the delete", "Cas": "the compare-and-swap",
         "AddMember": "adding the member", "Range": "the range read",
         "DeletePrefix": "the prefix delete", "RemoveMember": "removing the member",
         "TransferLeader": "the leadership transfer", "Snapshot": "the snapshot"}


def grpc_failure(err: grpc.aio.AioRpcError, closed_hint: str = "") -> str:
    """A short, human account of a failed gRPC call (no gRPC internals).

    ``closed_hint`` follows "connection closed": a TLS server closes a
    plaintext client's connection, and a mutual-TLS server one without an
    acceptable client certificate, with nothing more said on the wire.
    """
    details = str(err.details() or "")
    low = details.lower()
    if "certificate_verify_failed" in low:
        return "TLS: the member's certificate is not signed by a trusted CA (check --ca)"
    if "handshake failed" in low:
        return "TLS handshake failed"
    if "socket closed" in low and closed_hint:
        return f"connection closed; {closed_hint}"
    for needle, text in (("Connection refused", "connection refused"),
                         ("Deadline Exceeded", "no answer in time"),
                         ("Socket closed", "connection closed"),
                         ("failed to connect", "cannot connect")):
        if needle.lower() in details.lower():
            return text
    if err.code() == grpc.StatusCode.UNIMPLEMENTED:
        # Reached, but it has no KV API: a member's peer port, or another program.
        return "it does not serve the client API: a peer port, or not a nexus_raft member"
    return str(err.code().name).lower().replace("_", " ")


def _give_up(method: str, last: NexusRaftError | None) -> NexusRaftError:
    """The exception raised when the deadline passed, naming the last failure."""
    what = _WHAT.get(method, "the request")
    if last is None:
        return Timeout(f"{what}: deadline passed before any member was tried")
    reason = f"{what} gave up at its deadline; last failure: {last}"
    if isinstance(last, NotLeader):
        return NotLeader(
            f"{reason} (no leader was reachable)",
            leader_id=last.leader_id,
            leader_address=last.leader_address,
        )
    if isinstance(last, Timeout):
        return Timeout(reason)
    return Unavailable(reason)
