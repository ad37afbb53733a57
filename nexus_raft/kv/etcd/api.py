"""EtcdAPI: every etcd v3 service of one member, registered on the node's listen port.

``EtcdAPI(node).register`` is a servicer registration for
``RaftNode.add_servicer`` (the KV state machine's ``client_services`` and
``nexus-node`` add it beside the native ``nexus.kv.KV``); registering also
starts the lessor on the node's event loop. Options: ``progress_interval``
between watch progress notifications (etcd's default: 10 minutes).
"""

from __future__ import annotations

from typing import Any

import grpc

from nexus_raft.kv.etcd.service_cluster import (
    AuthServicer,
    ClusterServicer,
    MaintenanceServicer,
)
from nexus_raft.kv.etcd.service_kv import KVServicer
from nexus_raft.kv.etcd.service_lease import LeaseServicer, min_lease_ttl
from nexus_raft.kv.etcd.service_watch import WatchServicer
from nexus_raft.transport._generated.etcd import rpc_pb2_grpc

__all__ = ["EtcdAPI"]


class EtcdAPI:
    """The etcd KV, Watch, Lease, Cluster, Maintenance and Auth services of ``node``."""

    def __init__(self, node: Any, *, timeout: float = 5.0, progress_interval: float = 600.0):
        config = getattr(node, "config", None)
        election = (
            float(config.election_ticks) * float(config.tick_interval) if config is not None
            else 1.0
        )
        self.kv = KVServicer(node, timeout=timeout)
        self.watch = WatchServicer(node, timeout=timeout, progress_interval=progress_interval)
        self.lease = LeaseServicer(
            node, timeout=timeout, min_ttl=min_lease_ttl(election), election_timeout=election
        )
        self.cluster = ClusterServicer(node, timeout=timeout)
        self.maintenance = MaintenanceServicer(node, timeout=timeout)
        self.auth = AuthServicer(node, timeout=timeout)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the six services to ``server`` and start the lessor (on the running loop)."""
        rpc_pb2_grpc.add_KVServicer_to_server(self.kv, server)
        rpc_pb2_grpc.add_WatchServicer_to_server(self.watch, server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(self.lease, server)
        rpc_pb2_grpc.add_ClusterServicer_to_server(self.cluster, server)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(self.maintenance, server)
        rpc_pb2_grpc.add_AuthServicer_to_server(self.auth, server)
        self.lease.lessor.start()
