"""Health of a RaftNode: the periodic check, the gRPC health service, server reflection.

:class:`HealthMonitor` runs once a second on the node's event loop. From the
node's status it decides readiness (a leader is known and everything up to
the commit index seen at start-up is applied), sets the standard gRPC health
service (``grpc.health.v1.Health``) to SERVING or NOT_SERVING accordingly,
and raises the rate-limited warnings of :mod:`~.alerts` that need a time
window: quorum lost/regained, apply falling behind commit, peers reachable
again.

:class:`ServiceNames` records which services are registered on the node's
gRPC server, so that server reflection (``grpc.reflection.v1alpha``) and the
health service can name them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nexus_raft.consensus.node.alerts import Alerts
from nexus_raft.consensus.node.status import NodeStatus
from nexus_raft.consensus.node.tasks import cancel_and_wait
from nexus_raft.errors import NexusRaftError
from nexus_raft.transport.reflection import reflection_pool

__all__ = ["HealthMonitor", "QuorumView", "ServiceNames", "quorum_view"]

_log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class QuorumView:
    """Whether this node sees a working quorum, and a sentence saying why."""

    ok: bool
    detail: str


def quorum_view(st: NodeStatus, no_leader_for: float, grace: float) -> QuorumView:
    """Judge the quorum from one status.

    A leader counts the voters (full voters and witnesses) it heard from
    recently (``reachable``); it has a quorum with a majority. Any other
    member has one while it knows a leader; without one for longer than
    ``grace`` seconds (``no_leader_for`` so far) it reports quorum lost.
    """
    voters = [m for m in st.members if m.kind in ("voter", "witness")]
    if st.leader_id == st.id:
        up = [m.id for m in voters if m.reachable]
        down = [m.id for m in voters if not m.reachable]
        if len(up) * 2 > len(voters):
            return QuorumView(True, f"leader {st.id} hears from {len(up)} of {len(voters)} voters")
        return QuorumView(
            False,
            f"leader {st.id} hears from {len(up)} of {len(voters)} voters "
            f"(silent: {', '.join(map(str, down))})",
        )
    if st.leader_id:
        return QuorumView(True, f"leader is {st.leader_id} (term {st.term})")
    if no_leader_for <= grace:
        return QuorumView(True, "electing a leader")
    return QuorumView(False, f"no leader for {no_leader_for:.1f}s (term {st.term})")


class ServiceNames:
    """Wraps servicer registrations to learn the names of the services they add."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def wrap(self, register: Callable[[Any], None]) -> Callable[[Any], None]:
        """``register`` that also records the service names it adds to the server."""

        def recording(server: Any) -> None:
            register(_Recorder(server, self.names))

        return recording


class _Recorder:
    """Forwards to a grpc.aio.Server, noting service names as they are added."""

    def __init__(self, server: Any, names: list[str]) -> None:
        self._server = server
        self._names = names

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        handlers = tuple(handlers)
        for h in handlers:
            name = getattr(h, "service_name", None)
            if callable(name) and name() and name() not in self._names:
                self._names.append(name())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        if service not in self._names:
            self._names.append(service)
        self._server.add_registered_method_handlers(service, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class HealthMonitor:
    """The periodic health check of one node (see the module docstring).

    ``status`` returns the node's current status (raises NexusRaftError once
    the node stopped); ``election_timeout`` is in seconds.

    ``read_index`` (None on a witness, which serves no reads): once a leader
    is known after start, one read-index round learns the leader's commit
    index (``startup_seen``); readiness waits for it and for everything up
    to it to be applied, so a member restarted far behind is not ready while
    it catches up.
    """

    def __init__(
        self,
        status: Callable[[], NodeStatus],
        alerts: Alerts,
        *,
        election_timeout: float,
        interval: float = 1.0,
        apply_lag_seconds: float = 5.0,
        read_index: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._status = status
        self._alerts = alerts
        self._interval = interval
        # Long enough that a normal election (and a start-up where members come
        # up one after another) is not reported as a lost quorum.
        self._grace = max(3.0, 2 * election_timeout)
        self._apply_lag_seconds = apply_lag_seconds
        self.servicer = health.aio.HealthServicer()
        self.services = ServiceNames()
        self._no_leader_since: float | None = None
        self._behind_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._read_index = read_index
        self.startup_seen: int | None = None if read_index is not None else 0
        self.serving = False

    # --- gRPC services --------------------------------------------------------------------

    def register_health(self, server: grpc.aio.Server) -> None:
        """Add the health service (NOT_SERVING until the first check says otherwise)."""
        if isinstance(server, grpc.aio.Server):  # not on a simulated transport
            health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def register_reflection(self, server: grpc.aio.Server) -> None:
        """Add server reflection naming every service recorded so far (call it last)."""
        if not isinstance(server, grpc.aio.Server):  # a simulated transport
            return
        names = [*self.services.names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        names.append(reflection.SERVICE_NAME)
        # One pool over the default pool and the transport's private ones
        # (the etcd API's), so every listed service can also be described.
        reflection.enable_server_reflection(names, server, pool=reflection_pool(names))

    async def prepare(self) -> None:
        """Answer NOT_SERVING until the first check (call before the server starts)."""
        await self.servicer.set("", NOT_SERVING)

    async def _set_serving(self, serving: bool) -> None:
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.services.names):
            await self.servicer.set(name, status)
        if serving != self.serving:
            _log.info("node health: %s", "SERVING" if serving else "NOT_SERVING")
        self.serving = serving

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start checking every ``interval`` seconds (and learning the start-up commit)."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="raft-health")
        if self._read_index is not None and self.startup_seen is None:
            self._catch_up_task = loop.create_task(self._catch_up(), name="raft-catch-up")

    async def stop(self) -> None:
        """Stop checking and answer NOT_SERVING from now on. Idempotent."""
        for task in (self._catch_up_task, self._task):
            if task is not None:
                await cancel_and_wait(task)
        self._task = self._catch_up_task = None
        await self.servicer.enter_graceful_shutdown()

    async def _catch_up(self) -> None:
        """Learn the leader's commit index once a leader is known (see the class docstring)."""
        assert self._read_index is not None
        poll = min(self._interval, 0.05)
        while self.startup_seen is None:
            try:
                if self._status().has_leader:
                    # Returns once this node applied the leader's commit index.
                    self.startup_seen = await self._read_index()
                    _log.info("caught up: applied the commit index %d seen at start-up",
                              self.startup_seen)  # fmt: skip
                    return
            except NexusRaftError:
                pass  # no leader after all, or the round timed out: try again
            await asyncio.sleep(poll)

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except NexusRaftError:
                await self._set_serving(False)
            except Exception:  # a bug here must not stop the node
                _log.exception("health check failed")
            await asyncio.sleep(self._interval)

    async def check(self, now: float | None = None) -> NodeStatus:
        """One round: readiness, gRPC health, quorum and apply-lag warnings."""
        st = self._status()
        now = time.monotonic() if now is None else now
        if st.has_leader:
            self._no_leader_since = None
        elif self._no_leader_since is None:
            self._no_leader_since = now
        no_leader_for = 0.0 if self._no_leader_since is None else now - self._no_leader_since
        view = quorum_view(st, no_leader_for, self._grace)
        self._alerts.quorum(view.ok, view.detail)
        for m in st.members:
            if m.reachable:
                self._alerts.peer_reachable(m.id)
        behind = st.commit - st.applied
        if behind > self._alerts.apply_lag_entries:
            if self._behind_since is None:
                self._behind_since = now
            elif now - self._behind_since >= self._apply_lag_seconds:
                self._alerts.apply_behind(st.commit, st.applied, now - self._behind_since)
        else:
            self._behind_since = None
        await self._set_serving(st.ready and view.ok)
        return st
