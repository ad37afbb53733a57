"""RaftServer: serves peer RPCs on one port and hands them to a RaftHandler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, NoReturn

import grpc

from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport._generated import raft_pb2_grpc as pb_grpc
from nexus_raft.transport.address import parse_endpoint
from nexus_raft.transport.errors import (
    CLUSTER_MISMATCH,
    ERROR_KEY,
    HANDLER_FAILED,
    MALFORMED,
    SNAPSHOT_REJECTED,
    ListenFailed,
    SnapshotCorrupted,
)
from nexus_raft.transport.handler import HANDLER_METHODS, RaftHandler
from nexus_raft.transport.options import DEFAULT_CLUSTER_ID, MAX_MESSAGE_BYTES, server_options
from nexus_raft.transport.snapshot import ChunkReader
from nexus_raft.transport.tls import TLSConfig

__all__ = ["ExtraServicer", "RaftServer"]

_log = logging.getLogger(__name__)

ExtraServicer = Callable[[grpc.aio.Server], None]
"""Adds another service to the server, e.g. ``lambda s: add_KVServicer_to_server(kv, s)``."""


class _Servicer(pb_grpc.RaftPeerServicer):  # type: ignore[misc]
    """Checks cluster ids, delegates to the handler, turns failures into statuses."""

    def __init__(self, handler: RaftHandler, cluster_id: str, stream_window: int) -> None:
        self._handler = handler
        self._cluster_id = cluster_id
        self._window = stream_window

    # -- refusals ----------------------------------------------------------------

    async def _refuse_cluster(self, context: Any, got: str) -> NoReturn:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cluster id mismatch: this node is in {self._cluster_id!r}, request names {got!r}",
            trailing_metadata=((ERROR_KEY, CLUSTER_MISMATCH),),
        )
        raise AssertionError("unreachable: abort raises")

    async def _handler_failed(self, context: Any, method: str, exc: BaseException) -> NoReturn:
        _log.error("handler %s failed", method, exc_info=exc)
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"{method} handler failed: {type(exc).__name__}",
            trailing_metadata=((ERROR_KEY, HANDLER_FAILED),),
        )
        raise AssertionError("unreachable: abort raises")

    async def _bad_response(self, context: Any, method: str, resp: object) -> NoReturn:
        _log.error("handler %s returned %s", method, type(resp).__name__)
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"{method} handler returned {type(resp).__name__}",
            trailing_metadata=((ERROR_KEY, HANDLER_FAILED),),
        )
        raise AssertionError("unreachable: abort raises")

    async def _reject_snapshot(self, context: Any, code: Any, reason: str) -> NoReturn:
        _log.warning("snapshot stream refused: %s", reason)
        await context.abort(code, reason, trailing_metadata=((ERROR_KEY, SNAPSHOT_REJECTED),))
        raise AssertionError("unreachable: abort raises")

    async def _unary(
        self, method: str, call: Callable[[Any], Awaitable[Any]], request: Any, context: Any,
        response_type: type,
    ) -> Any:
        if request.cluster_id != self._cluster_id:
            await self._refuse_cluster(context, request.cluster_id)
        try:
            response = await call(request)
        except Exception as exc:
            await self._handler_failed(context, method, exc)
        if not isinstance(response, response_type):
            await self._bad_response(context, method, response)
        return response

    # -- unary RPCs --------------------------------------------------------------

    async def RequestVote(self, request: pb.VoteRequest, context: Any) -> pb.VoteResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "request_vote", self._handler.request_vote, request, context, pb.VoteResponse
        )

    async def AppendEntries(self, request: pb.AppendRequest, context: Any) -> pb.AppendResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "append_entries", self._handler.append_entries, request, context, pb.AppendResponse
        )

    async def TimeoutNow(
        self, request: pb.TimeoutNowRequest, context: Any
    ) -> pb.TimeoutNowResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "timeout_now", self._handler.timeout_now, request, context, pb.TimeoutNowResponse
        )

    async def ReadIndex(self, request: pb.ReadIndexRequest, context: Any) -> pb.ReadIndexResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "read_index", self._handler.read_index, request, context, pb.ReadIndexResponse
        )

    # -- Stream ------------------------------------------------------------------

    async def Stream(
        self, request_iterator: AsyncIterator[pb.AppendRequest], context: Any
    ) -> AsyncIterator[pb.AppendResponse]:
        """Pipelined appends: a reader task starts one handler call per request
        (in arrival order, at most ``stream_window`` unfinished at once) and
        queues it; this generator awaits them in queue order, so responses
        leave in request order while later requests are already being read
        and handled.
        """
        queue: asyncio.Queue[asyncio.Task[Any] | str | BaseException | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self._window)
        loop = asyncio.get_running_loop()
        append = self._handler.append_entries
        cluster_id = self._cluster_id

        async def read_requests() -> None:
            # The first request must name this cluster; later ones may leave the
            # id empty (the client sends it once per call) but not name another.
            first = True
            try:
                async for request in request_iterator:
                    got = request.cluster_id
                    if got != cluster_id and (first or got):
                        queue.put_nowait(got)
                        return
                    first = False
                    await slots.acquire()
                    queue.put_nowait(loop.create_task(append(request)))
            except Exception as exc:  # the request stream itself failed
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(None)

        reader = loop.create_task(read_requests())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, str):
                    await self._refuse_cluster(context, item)
                if isinstance(item, BaseException):
                    _log.warning("stream request failed: %s", item)
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"bad stream request: {type(item).__name__}",
                        trailing_metadata=((ERROR_KEY, MALFORMED),),
                    )
                assert isinstance(item, asyncio.Task)
                try:
                    response = await item
                except Exception as exc:
                    await self._handler_failed(context, "append_entries", exc)
                finally:
                    slots.release()
                if not isinstance(response, pb.AppendResponse):
                    await self._bad_response(context, "append_entries", response)
                yield response
        finally:
            reader.cancel()
            while not queue.empty():
                left = queue.get_nowait()
                if isinstance(left, asyncio.Task):
                    left.cancel()

    # -- InstallSnapshot ---------------------------------------------------------

    async def InstallSnapshot(
        self, request_iterator: AsyncIterator[pb.SnapshotChunk], context: Any
    ) -> pb.SnapshotAck:
        messages = request_iterator.__aiter__()
        try:
            first = await messages.__anext__()
        except StopAsyncIteration:
            await self._reject_snapshot(
                context, grpc.StatusCode.INVALID_ARGUMENT, "empty snapshot stream"
            )
        if first.WhichOneof("part") != "meta":
            await self._reject_snapshot(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "snapshot stream must start with meta",
            )
        meta = first.meta
        if meta.cluster_id != self._cluster_id:
            await self._refuse_cluster(context, meta.cluster_id)
        chunks = ChunkReader(messages)
        try:
            ack = await self._handler.install_snapshot(meta, chunks)
        except SnapshotCorrupted as exc:
            await self._reject_snapshot(context, grpc.StatusCode.DATA_LOSS, str(exc))
        except Exception as exc:
            if chunks.error is not None:  # the handler failed because the stream did
                await self._reject_snapshot(context, grpc.StatusCode.DATA_LOSS, str(chunks.error))
            await self._handler_failed(context, "install_snapshot", exc)
        if chunks.error is not None:  # the handler swallowed the corruption
            await self._reject_snapshot(context, grpc.StatusCode.DATA_LOSS, str(chunks.error))
        if not isinstance(ack, pb.SnapshotAck):
            await self._bad_response(context, "install_snapshot", ack)
        if ack.accepted and not chunks.verified:
            # Never confirm a snapshot whose stream was not verified to the end.
            try:
                await chunks.drain()
            except SnapshotCorrupted as exc:
                await self._reject_snapshot(context, grpc.StatusCode.DATA_LOSS, str(exc))
        return ack


def _check_handler(handler: object) -> None:
    missing = [m for m in HANDLER_METHODS if not callable(getattr(handler, m, None))]
    if missing:
        raise TypeError(f"handler lacks RaftHandler method(s): {', '.join(missing)}")


class RaftServer:
    """Serves the peer service (and any ``extra_servicers``) on ``listen``.

    ``listen`` is ``host:port`` (port 0: any free port, see :meth:`start`).
    With ``tls`` the port speaks TLS, mutual TLS when
    ``tls.require_client_cert``. Requests whose cluster id is not
    ``cluster_id`` are refused (the client raises ``ClusterMismatch``).
    Messages above ``max_message_bytes`` are refused (``PayloadTooLarge``).
    ``stream_window`` bounds the handler calls one stream may have in
    progress (see :meth:`RaftHandler.append_entries`).
    """

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
    ) -> None:
        _check_handler(handler)
        host, port, scheme_tls = parse_endpoint(listen, allow_port_zero=True)
        if scheme_tls:
            raise ValueError("listen takes host:port; pass tls=TLSConfig(...) for TLS")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be TLSConfig or None, not {type(tls).__name__}")
        extras = list(extra_servicers)
        for extra in extras:
            if not callable(extra):
                raise TypeError("extra_servicers must be callables taking the grpc.aio.Server")
        if not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be str, not {type(cluster_id).__name__}")
        limits = (("max_message_bytes", max_message_bytes), ("stream_window", stream_window))
        for name, value in limits:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self._handler = handler
        self._host = host
        self._port = port
        self._tls = tls
        self._extras = extras
        self._cluster_id = cluster_id
        self._max_message_bytes = max_message_bytes
        self._stream_window = stream_window
        self._server: grpc.aio.Server | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (the requested one until :meth:`start` ran)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``host:port`` clients dial (``https://host:port`` with TLS)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https://" if self._tls is not None else ""
        return f"{scheme}{host}:{self._port}"

    @property
    def cluster_id(self) -> str:
        """The cluster id requests must carry."""
        return self._cluster_id

    async def start(self) -> int:
        """Bind and start serving; returns the bound port. Raises ListenFailed."""
        if self._server is not None:
            raise RuntimeError("RaftServer.start() called twice")
        server = grpc.aio.server(options=server_options(self._max_message_bytes))
        pb_grpc.add_RaftPeerServicer_to_server(
            _Servicer(self._handler, self._cluster_id, self._stream_window), server
        )
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
        _log.info("raft peer server listening on %s", self.endpoint)
        return self._port

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving; in-flight calls get ``grace`` seconds. Idempotent."""
        if self._server is None or self._stopped:
            self._stopped = True
            return
        self._stopped = True
        await self._server.stop(grace)

    async def wait_for_termination(self) -> None:
        """Block until the server stops (for programs that only serve)."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> RaftServer:
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
