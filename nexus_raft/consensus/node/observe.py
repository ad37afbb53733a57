"""Wiring a RaftNode's observability: registry, health service, reflection, HTTP endpoint.

:class:`Observability` is owned by the node. Before the gRPC server starts it
wraps the node's servicer registrations (to learn their service names) and
adds the gRPC health service and server reflection; after start it starts
the periodic :class:`~.health.HealthMonitor` and, when configured, the
:class:`~.metrics_http.MetricsServer`. A state machine that implements
:class:`~nexus_raft.consensus.state_machine.ProvidesMetrics` adds its own
collectors to the node's registry.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from nexus_raft.consensus.core.status import Status
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.alerts import Alerts
from nexus_raft.consensus.node.attributes import MemberAttributes
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.health import HealthMonitor
from nexus_raft.consensus.node.metrics_export import NodeCollector, Observed
from nexus_raft.consensus.node.metrics_http import MetricsServer
from nexus_raft.consensus.node.status import NodeStatus, build_status
from nexus_raft.transport.errors import ClusterMismatch

__all__ = ["Observability", "data_size", "package_version"]

Register = Callable[[grpc.aio.Server], None]


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """The installed nexus-raft version ("unknown" when not installed)."""
    try:
        return metadata.version("nexus-raft")
    except metadata.PackageNotFoundError:
        return "unknown"


def data_size(path: str | Path) -> int:
    """Bytes of the regular files under ``path`` (0 if it does not exist)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # removed while we looked (a compaction)
    return total


DB_SIZE_SECONDS = 1.0
"""How stale the ``db_size`` of a status may be."""


class Observability:
    """The node's registry, health monitor and metrics endpoint (see the module docstring)."""

    def __init__(self, node: Observed, health: HealthMonitor, alerts: Alerts) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        self._node = node
        self.health = health
        self._alerts = alerts
        self._http: MetricsServer | None = None
        self._started = False
        # data_size walks the data directory (thousands of LevelDB tables
        # with millions of keys); status() is called several times a second
        # (the etcd lessor, Status RPCs, scrapes), so the size is re-read at
        # most once per DB_SIZE_SECONDS.
        self._db_size = (0, -DB_SIZE_SECONDS)

    def describe(
        self,
        st: Status,
        *,
        applied: int,
        snapshot_index: int,
        addresses: Mapping[int, str],
        config: NodeConfig,
        attributes: Mapping[int, MemberAttributes] | None = None,
        leader_address: str | None = None,
        startup_commit: int,
        apply_failed: BaseException | None,
        down_after: float,
    ) -> NodeStatus:
        """The node's status with its health view (what ``RaftNode.status()`` returns)."""
        metrics = self._node.metrics
        now = time.monotonic()
        contacts = {nid: now - s.last_contact for nid, s in metrics.peers.items()
                    if s.last_contact}  # fmt: skip
        if st.leader_id and st.leader_id != st.id and metrics.leader_contact:
            contacts[st.leader_id] = now - metrics.leader_contact
        errors = []
        if apply_failed is not None:
            errors.append(f"state machine failed: {apply_failed}")
        if not st.leader_id:
            errors.append("no leader")
        if self._alerts.quorum_lost:
            errors.append("quorum lost")
        return build_status(
            st,
            applied=applied,
            snapshot_index=snapshot_index,
            addresses=addresses,
            attributes=attributes,
            leader_address=leader_address,
            witness=config.is_witness,
            contacts=contacts,
            down_after=down_after,
            version=package_version(),
            db_size=self._data_size(config.data_dir),
            startup_commit=max(startup_commit, self.health.startup_seen or 0),
            caught_up=self.health.startup_seen is not None,
            errors=errors,
            payload_modes={nid: pr.payload_mode for nid, pr in st.progress.items()},
        )

    def _data_size(self, path: str | Path) -> int:
        size, at = self._db_size
        now = time.monotonic()
        if now - at >= DB_SIZE_SECONDS:
            size = data_size(path)
            self._db_size = (size, now)
        return size

    def unreachable(
        self, node_id: int, address: str | None, leading: bool, down_after: float
    ) -> None:
        """The transport could not reach ``node_id``: count it, warn if it stays silent."""
        metrics = self._node.metrics
        stats = metrics.peer(node_id)
        stats.send_failures += 1
        if leading:
            # Silent since its last answer, or since this node leads: a peer
            # still starting up gets ``down_after`` seconds of grace.
            # (Never "never answered": a peer that answered this node in an
            # earlier term, or led it a moment ago, has been silent this long.)
            silent = time.monotonic() - max(stats.last_contact, metrics.leader_since)
            if silent > down_after:
                self._alerts.peer_unreachable(node_id, address, silent)

    def peer_error(self, node_id: int, address: str | None, exc: Exception) -> None:
        """A call to ``node_id`` failed with ``exc`` (warns about a peer of another cluster)."""
        if isinstance(exc, ClusterMismatch):
            self._alerts.peer_other_cluster(node_id, address, str(exc))

    @property
    def metrics_port(self) -> int | None:
        """The metrics endpoint's bound port (None when not serving one)."""
        return self._http.port if self._http is not None else None

    def add_collectors(self, collectors: Sequence[Any]) -> None:
        """Register an application's collectors (each once)."""
        for collector in collectors:
            self.registry.register(collector)

    async def servicers(self, registrations: Sequence[Register]) -> list[Register]:
        """The registrations to start the server with: the node's, health, then reflection."""
        await self.health.prepare()
        peer_service = wire.pb.DESCRIPTOR.services_by_name["RaftPeer"].full_name
        if peer_service not in self.health.services.names:
            self.health.services.names.append(peer_service)
        wrapped = [self.health.services.wrap(r) for r in registrations]
        return [*wrapped, self.health.register_health, self.health.register_reflection]

    async def start(self, metrics_listen: str | None) -> None:
        """Start the health checks and, with ``metrics_listen``, the HTTP endpoint."""
        self._started = True
        self.health.start()
        if metrics_listen is not None:
            self._http = MetricsServer(metrics_listen, self._status, self.registry)
            await self._http.start()

    def _status(self) -> NodeStatus:
        return self._node.status()

    async def stop(self) -> None:
        """Stop the endpoint and the checks (health answers NOT_SERVING). Idempotent."""
        if self._http is not None:
            await self._http.stop()
        if self._started:
            await self.health.stop()
