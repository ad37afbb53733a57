"""The ports a RaftNode serves: peers and clients, together or apart.

One port (``peer_listen`` unset): a single :class:`RaftServer` serves the
peer service and the application's services, as on a laptop. Two ports: the
:class:`RaftServer` on ``peer_listen`` serves only peer services, and a
:class:`ServiceServer` on ``listen`` serves only the application's; a client
port never accepts a peer RPC, so operators can firewall peer traffic apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from nexus_raft.consensus.core.messages import Role
from nexus_raft.consensus.node.attributes import url_endpoint
from nexus_raft.consensus.node.config import WILDCARD_HOSTS, NodeConfig
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.observe import Observability
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.server import PeerHandler
from nexus_raft.errors import ConsensusError, NexusRaftError, StorageError, Unavailable
from nexus_raft.transport.factory import GRPC, PeerTransport
from nexus_raft.transport.handler import RaftHandler
from nexus_raft.transport.identity import PeerIdentity, authenticated_member
from nexus_raft.transport.server import RaftServer, ServiceServer

__all__ = ["ServingAPI", "start_servers"]

_log = logging.getLogger("nexus_raft.consensus.node.node")

Register = Callable[[grpc.aio.Server], None]

class ServingAPI:
    """The ports of a RaftNode: services on them, their addresses, who calls.

    The node provides the attributes declared here.
    """

    config: NodeConfig
    _peers: Peers | None
    _server: ServiceServer | None
    _peer_server: RaftServer | None
    _identity: PeerIdentity | None
    _servicers: list[Register]
    _peer_servicers: list[Register]
    _started: bool
    _driver: Driver | None
    _observe: Observability
    _transport: PeerTransport
    _closed: bool
    _failure: str | None
    _failed_event: asyncio.Event
    _failing: set[asyncio.Task[None]]

    @property
    def id(self) -> int:
        """This member's id."""
        return self.config.id

    @property
    def cluster_id(self) -> str:  # pragma: no cover - RaftNode overrides it
        """The cluster id peer requests must carry."""
        raise NotImplementedError

    @property
    def leader_id(self) -> int | None:  # pragma: no cover - RaftNode overrides it
        """The known leader's id, or None."""
        raise NotImplementedError

    @property
    def leader_address(self) -> str | None:
        """The known leader's client endpoint, or None.

        What the leader published as its client URL (member attributes,
        :mod:`~nexus_raft.consensus.node.attributes`); before it has, its
        address book entry when peers and clients share one port (with a
        separate peer port that entry is a peer address clients cannot use).
        """
        lid = self.leader_id
        if lid is None or self._peers is None:
            return None
        if lid == self.id:
            return self.client_endpoint()
        return self._peers.client_address(lid)

    def client_address(self, member_id: int) -> str | None:
        """Where clients reach ``member_id`` (its published client endpoint), or None."""
        if member_id == self.id:
            return self.client_endpoint()
        return self._peers.client_address(member_id) if self._peers is not None else None

    def client_endpoint(self) -> str | None:
        """This node's own client endpoint (``advertise_client``, else the bound ``listen``).

        None before the client port is bound, and for a wildcard ``listen``
        host without ``advertise_client`` (nobody can dial ``0.0.0.0``).
        """
        cfg = self.config
        if cfg.advertise_client is not None:
            return url_endpoint(cfg.advertise_client)
        server = self._server
        if server is None:
            return None
        host, _, port = cfg.listen.rpartition(":")
        if host.strip("[]") in WILDCARD_HOSTS:
            return None
        return f"{host}:{server.port}" if port == "0" else cfg.listen

    @property
    def port(self) -> int:
        """The bound client listen port (after ``start()``)."""
        if self._server is None:
            raise Unavailable("node is not started")
        return self._server.port

    @property
    def peer_port(self) -> int:
        """The bound peer port (after ``start()``; ``port`` when one port serves both)."""
        if self._peer_server is None:
            raise Unavailable("node is not started")
        return self._peer_server.port

    @property
    def peers_authenticated(self) -> bool:
        """Whether every peer request's sender is proven by its TLS certificate."""
        return self._identity is not None

    def peer_member(self, context: Any) -> int | None:
        """The member id a peer-port gRPC call's certificate proves, or None.

        ``context`` is the servicer context of a call served on the peer port
        (a service added with :meth:`add_peer_servicer`). None when peers are
        not authenticated (:attr:`peers_authenticated` is False) or the
        certificate names no single member.
        """
        return authenticated_member(context, self._identity)

    async def _serve_forward(self, request: Any) -> Any:  # pragma: no cover - RaftNode's
        """Run a follower's forwarded request on this node."""
        raise NotImplementedError

    def add_servicer(self, register: Register) -> None:
        """Serve another gRPC service on the node's client port (call before ``start()``)."""
        self._add(self._servicers, register, "add_servicer")

    def add_peer_servicer(self, register: Register) -> None:
        """Serve another gRPC service on the node's peer port (call before ``start()``).

        For peer-to-peer services beyond Raft itself (e.g. forwarded client
        calls): they get the peer port's TLS, and :meth:`peer_member` tells
        who is calling.
        """
        self._add(self._peer_servicers, register, "add_peer_servicer")

    async def _serve(self, cfg: NodeConfig) -> None:
        """Start the peer server, and the client server when it has its own port."""
        assert self._driver is not None
        handler = PeerHandler(
            self._driver,
            None if cfg.is_witness else cfg.snapshot_dir,
            max_snapshot_bytes=cfg.max_snapshot_bytes,
            min_free_bytes=cfg.snapshot_min_free_bytes,
            forwarded=self._serve_forward,
            authenticated=self._identity is not None,
        )
        self._server, self._peer_server = await start_servers(
            cfg,
            handler,
            await self._observe.servicers(self._servicers),
            self._peer_servicers,
            self._identity,
            self._transport,
            cluster_id=self.cluster_id,
        )

    # --- stopping on a storage failure ------------------------------------------------

    @property
    def failure(self) -> str | None:
        """Why the node stopped serving on its own (one line), or None.

        A member whose log or state machine cannot be written (a full disk,
        a failing device) stops serving at once, reads included: it would
        otherwise answer from a state it can no longer keep. It leaves the
        cluster to elect another leader; restarted once the cause is fixed,
        it recovers from its data directory (nothing acknowledged is lost:
        every acknowledged write was fsync'd) and catches up.
        """
        return self._failure

    async def wait_failed(self) -> str:
        """Wait until the node stops on its own; returns :attr:`failure`."""
        await self._failed_event.wait()
        assert self._failure is not None
        return self._failure

    def _fatal(self, exc: BaseException) -> None:
        """The driver or the apply task stopped on ``exc``: stop serving now."""
        if self._failure is not None or self._closed:
            return
        reason = " ".join(str(exc).split()) or type(exc).__name__
        what = "write its data" if isinstance(exc, StorageError) else "continue"
        self._failure = (
            f"node {self.id} cannot {what} ({self.config.data_dir}): {reason}; "
            "it stopped serving and left the cluster to the other members"
        )
        _log.critical("%s", self._failure)
        self._failed_event.set()
        loop = asyncio.get_running_loop()
        jobs = [s.stop(grace=0) for s in {self._server, self._peer_server} if s is not None]
        jobs.append(self._hand_over())
        # Kept until shutdown() has waited for them (_stopped_failing): a
        # shutdown that returned while they ran would leave in-flight calls
        # to the event loop's teardown.
        self._failing.update(loop.create_task(job) for job in jobs)

    async def _stopped_failing(self) -> None:
        """Wait for the stops :meth:`_fatal` began (a shutdown calls it after its own stops)."""
        jobs, self._failing = self._failing, set()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)

    async def _hand_over(self) -> None:
        """A failed leader steps down at once: TimeoutNow to its most up-to-date voter.

        The core cannot be driven any more, but its view of the followers is
        intact; without this the others would wait out an election timeout.
        """
        d, peers = self._driver, self._peers
        if d is None or peers is None or d.raft.role is not Role.LEADER:
            return
        raft = d.raft
        voters = raft.conf_state.full_voters - {self.id}
        best = max(
            (nid for nid in voters if nid in raft.prs),
            key=lambda nid: raft.prs[nid].match,
            default=None,
        )
        if best is None:
            return
        try:
            client = await peers.client(best)
            await client.timeout_now(raft.term, self.id, timeout=1.0)
            _log.warning("node %d: handed leadership to %d before stopping", self.id, best)
        except (NexusRaftError, KeyError) as exc:
            _log.warning("node %d: could not hand leadership to %d: %s", self.id, best, exc)

    def _add(self, into: list[Register], register: Register, what: str) -> None:
        if not callable(register):
            raise TypeError("register must be a callable taking the grpc.aio.Server")
        if self._started:
            raise ConsensusError(f"{what}() must be called before start()")
        into.append(register)


async def start_servers(
    cfg: NodeConfig,
    handler: RaftHandler,
    client_services: Sequence[Register],
    peer_services: Sequence[Register],
    identity: PeerIdentity | None,
    transport: PeerTransport = GRPC,
    *,
    cluster_id: str | None = None,
) -> tuple[ServiceServer, RaftServer]:
    """Start serving; returns (client server, peer server), the same object on one port.

    ``cluster_id``: the id peer requests must carry (default: the configured one).

    Logs a WARNING when peer requests are not authenticated by certificate.
    """
    separate = cfg.separate_peer_port
    peer_listen = cfg.peer_listen if separate and cfg.peer_listen else cfg.listen
    peer_server = transport.server(
        handler,
        peer_listen,
        tls=cfg.peer_server_tls,
        extra_servicers=list(peer_services) if separate else [*peer_services, *client_services],
        cluster_id=cluster_id if cluster_id is not None else cfg.effective_cluster_id,
        peer_identity=identity,
    )
    await peer_server.start()
    client_server: ServiceServer = peer_server
    if separate:
        client_server = ServiceServer(cfg.listen, tls=cfg.tls, extra_servicers=client_services)
        try:
            await client_server.start()
        except BaseException:
            await peer_server.stop(grace=None)
            raise
    if identity is None:
        _warn_unauthenticated(cfg, peer_server.endpoint)
    return client_server, peer_server


def _warn_unauthenticated(cfg: NodeConfig, endpoint: str) -> None:
    tls = cfg.peer_server_tls
    if tls is None:
        why = "no TLS on the peer port"
    elif not tls.require_client_cert:
        why = "the peer port does not require client certificates"
    else:
        why = "no peer identity rule: any certificate of the CA speaks for any member"
    _log.warning(
        "node %d: peer traffic on %s is NOT authenticated (%s): anyone who can reach "
        "this port can claim to be a member; use mutual TLS (--peer-cert/--peer-key/"
        "--peer-ca) or firewall the port",
        cfg.id,
        endpoint,
        why,
    )
