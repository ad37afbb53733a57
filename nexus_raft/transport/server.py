"""gRPC servers: RaftServer (the peer service) and ServiceServer (other services only).

A node that separates peer from client traffic runs both: a
:class:`RaftServer` on its peer port (the RaftPeer service, optionally with
mutual TLS and a :class:`~nexus_raft.transport.identity.PeerIdentity`) and a
:class:`ServiceServer` on its client port that serves the application's
services and never the peer service. A laptop setup runs one RaftServer with
the application's services added (``extra_servicers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from types import TracebackType

import grpc

from nexus_raft.transport._generated import raft_pb2_grpc as pb_grpc
from nexus_raft.transport.address import parse_endpoint
from nexus_raft.transport.errors import ListenFailed
from nexus_raft.transport.handler import HANDLER_METHODS, RaftHandler
from nexus_raft.transport.identity import PeerIdentity
from nexus_raft.transport.options import DEFAULT_CLUSTER_ID, MAX_MESSAGE_BYTES, server_options
from nexus_raft.transport.peer_service import PeerServicer
from nexus_raft.transport.tls import TLSConfig

__all__ = ["ExtraServicer", "RaftServer", "ServiceServer"]

_log = logging.getLogger(__name__)


class _QuietCancelledRpcs(logging.Filter):
    """Drop gRPC's report of an RPC task cancelled as the process shuts down.

    When a server stops (or its event loop ends) while a streaming RPC is
    still open, gRPC's own wrapper task is cancelled and gRPC logs that at
    ERROR with a traceback ("Exception not handled by _handle_exceptions"):
    a member that stops on purpose (disk full, removal, SIGTERM) then ends
    its log with a traceback instead of its one-line reason. Only records
    whose exception is a cancellation are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


logging.getLogger("grpc._cython.cygrpc").addFilter(_QuietCancelledRpcs())

ExtraServicer = Callable[[grpc.aio.Server], None]
"""Adds another service to the server, e.g. ``lambda s: add_KVServicer_to_server(kv, s)``."""


def _check_handler(handler: object) -> None:
    # A handler may implement only the methods it needs (the others answer
    # UNIMPLEMENTED), but it must implement one, and what it has must be callable.
    present = [m for m in HANDLER_METHODS if getattr(handler, m, None) is not None]
    if not present:
        names = ", ".join(HANDLER_METHODS)
        raise TypeError(f"handler has none of the RaftHandler methods: {names}")
    bad = [m for m in present if not callable(getattr(handler, m))]
    if bad:
        raise TypeError(f"handler attribute(s) not callable: {', '.join(bad)}")


class ServiceServer:
    """Serves ``extra_servicers`` (and nothing else) on ``listen``.

    ``listen`` is ``host:port`` (port 0: any free port, see :meth:`start`).
    With ``tls`` the port speaks TLS, mutual TLS when
    ``tls.require_client_cert``. Messages above ``max_message_bytes`` are
    refused.
    """

    _label = "service server"

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        tls: TLSConfig | None = None,
        extra_servicers: Iterable[ExtraServicer] = (),
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        host, port, scheme_tls = parse_endpoint(listen, allow_port_zero=True)
        if scheme_tls:
            raise ValueError("listen takes host:port; pass tls=TLSConfig(...) for TLS")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be TLSConfig or None, not {type(tls).__name__}")
        extras = list(extra_servicers)
        for extra in extras:
            if not callable(extra):
                raise TypeError("extra_servicers must be callables taking the grpc.aio.Server")
        _check_limit("max_message_bytes", max_message_bytes)
        self._host = host
        self._port = port
        self._tls = tls
        self._extras = extras
        self._max_message_bytes = max_message_bytes
        self._server: grpc.aio.Server | None = None
        self._stopping: asyncio.Task[None] | None = None

    def _register(self, server: grpc.aio.Server) -> None:
        """Add this server's own services (none here)."""

    @property
    def port(self) -> int:
        """The bound port (the requested one until :meth:`start` ran)."""
        return self._port

    @property
    def tls(self) -> TLSConfig | None:
        """The TLS configuration of the port (None: plaintext)."""
        return self._tls

    @property
    def endpoint(self) -> str:
        """``host:port`` clients dial (``https://host:port`` with TLS)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https://" if self._tls is not None else ""
        return f"{scheme}{host}:{self._port}"

    async def start(self) -> int:
        """Bind and start serving; returns the bound port. Raises ListenFailed."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__}.start() called twice")
        server = grpc.aio.server(options=server_options(self._max_message_bytes))
        self._register(server)
        for extra in self._extras:
            extra(server)
        host = f"[{self._host}]" if ":" in self._host else self._host
        address = f"{host}:{self._port}"
        try:
            if self._tls is not None:
                bound = server.add_secure_port(address, self._tls.server_credentials())
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ListenFailed(f"cannot listen on {address}: {exc}") from None
        if not bound:
            raise ListenFailed(f"cannot listen on {address}")
        await server.start()
        self._server = server
        self._port = int(bound)
        _log.info("%s listening on %s", self._label, self.endpoint)
        return self._port

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; in-flight calls get ``grace`` seconds. Idempotent.

        Returns once the server has stopped, whichever call began it: a call
        made while an earlier one is still stopping waits for that one (whose
        ``grace`` applies). Returning earlier would let the caller go on (a
        node's shutdown, then the event loop's end) while in-flight calls
        still run; the loop's teardown then cancels gRPC's RPC tasks, which
        gRPC reports with a traceback on stderr.
        """
        if self._server is None:
            return
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(
                self._server.stop(grace), name=f"stop {self._label} {self.endpoint}"
            )
        # Shielded: a caller cancelled while waiting leaves the stop running
        # for the next caller to wait for.
        await asyncio.shield(self._stopping)

    async def wait_for_termination(self) -> None:
        """Block until the server stops (for programs that only serve)."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> ServiceServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class RaftServer(ServiceServer):
    """Serves the peer service (and any ``extra_servicers``) on ``listen``.

    ``listen`` is ``host:port`` (port 0: any free port, see :meth:`start`).
    With ``tls`` the port speaks TLS, mutual TLS when
    ``tls.require_client_cert``. Requests whose cluster id is not
    ``cluster_id`` are refused (the client raises ``ClusterMismatch``).
    With ``peer_identity`` (mutual TLS required) every request's claimed
    sender must be the member its client certificate proves, else it is
    refused (the client raises ``PeerRefused``).
    Messages above ``max_message_bytes`` are refused (``PayloadTooLarge``).
    ``stream_window`` bounds the handler calls one stream may have in
    progress (see :meth:`RaftHandler.append_entries`).
    """

    _label = "raft peer server"

    def __init__(
        self,
        handler: RaftHandler,
        listen: str = "127.0.0.1:0",
        *,
        tls: TLSConfig | None = None,
        extra_servicers: Iterable[ExtraServicer] = (),
        cluster_id: str = DEFAULT_CLUSTER_ID,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        stream_window: int = 64,
        peer_identity: PeerIdentity | None = None,
    ) -> None:
        _check_handler(handler)
        super().__init__(
            listen, tls=tls, extra_servicers=extra_servicers, max_message_bytes=max_message_bytes
        )
        if not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be str, not {type(cluster_id).__name__}")
        _check_limit("stream_window", stream_window)
        if peer_identity is not None:
            if not isinstance(peer_identity, PeerIdentity):
                kind = type(peer_identity).__name__
                raise TypeError(f"peer_identity must be PeerIdentity or None, not {kind}")
            if tls is None or not tls.require_client_cert:
                raise ValueError(
                    "peer_identity needs mutual TLS (tls=TLSConfig(..., require_client_cert=True))"
                )
        self._handler = handler
        self._cluster_id = cluster_id
        self._stream_window = stream_window
        self._identity = peer_identity

    @property
    def cluster_id(self) -> str:
        """The cluster id requests must carry."""
        return self._cluster_id

    @property
    def peer_identity(self) -> PeerIdentity | None:
        """The certificate rule senders are checked against (None: not checked)."""
        return self._identity

    def _register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_RaftPeerServicer_to_server(
            PeerServicer(self._handler, self._cluster_id, self._stream_window, self._identity),
            server,
        )


def _check_limit(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
