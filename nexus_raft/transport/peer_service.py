"""The RaftPeer gRPC servicer: cluster id, sender identity, handler, refusals.

Every peer request passes three gates before its handler sees it, in order:

1. its cluster id must be the server's (else FAILED_PRECONDITION,
   ``cluster-mismatch``);
2. with a :class:`~nexus_raft.transport.identity.PeerIdentity` configured
   (mutual TLS), the member its certificate proves must be the sender the
   request claims (``candidate_id``, ``leader_id`` or ``from_id``); a
   certificate of member 2 cannot speak as member 1 (else
   PERMISSION_DENIED, ``peer-refused``);
3. the handler may refuse it by raising
   :class:`~nexus_raft.transport.errors.PeerRefused` (PERMISSION_DENIED,
   ``peer-refused``): answered at once, logged at WARNING, rate-limited,
   never a traceback.

A handler's :class:`~nexus_raft.errors.Unavailable` (the node is stopping
or its storage failed) is answered UNAVAILABLE with a rate-limited warning.
Any other handler exception is answered INTERNAL and logged with its
traceback: that is a bug, not a hostile peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from nexus_raft.errors import Unavailable
from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport._generated import raft_pb2_grpc as pb_grpc
from nexus_raft.transport.errors import (
    CLUSTER_KEY,
    CLUSTER_MISMATCH,
    ERROR_KEY,
    HANDLER_FAILED,
    MALFORMED,
    PEER_REFUSED,
    SNAPSHOT_REJECTED,
    PeerRefused,
    SnapshotCorrupted,
)
from nexus_raft.transport.handler import RaftHandler
from nexus_raft.transport.identity import PeerIdentity, authenticated_member
from nexus_raft.transport.ratelimit import LogLimiter
from nexus_raft.transport.snapshot import ChunkReader

__all__ = ["PeerServicer"]

_log = logging.getLogger("nexus_raft.transport.server")


class _Refusal:
    """A queued stream refusal (the stream's reader found a bad request)."""

    __slots__ = ("exc",)

    def __init__(self, exc: PeerRefused) -> None:
        self.exc = exc


class PeerServicer(pb_grpc.RaftPeerServicer):  # type: ignore[misc]
    """Checks cluster ids and sender identity, delegates to the handler, maps failures."""

    def __init__(
        self,
        handler: RaftHandler,
        cluster_id: str,
        stream_window: int,
        identity: PeerIdentity | None = None,
    ) -> None:
        self._handler = handler
        self._cluster_id = cluster_id
        self._window = stream_window
        self._identity = identity
        self._warn = LogLimiter(_log)

    # -- refusals ----------------------------------------------------------------

    async def _refuse_cluster(self, context: Any, got: str) -> NoReturn:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cluster id mismatch: this node is in {self._cluster_id!r}, request names {got!r}",
            trailing_metadata=((ERROR_KEY, CLUSTER_MISMATCH), (CLUSTER_KEY, self._cluster_id)),
        )
        raise AssertionError("unreachable: abort raises")

    async def _refuse(self, context: Any, method: str, exc: PeerRefused) -> NoReturn:
        self._warn.warning(
            (exc.kind, exc.sender),
            "refused %s from %s (%s): %s",
            method,
            exc.sender if exc.sender is not None else "?",
            _peer_of(context),
            exc,
        )
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            str(exc),
            trailing_metadata=((ERROR_KEY, PEER_REFUSED),),
        )
        raise AssertionError("unreachable: abort raises")

    async def _handler_failed(self, context: Any, method: str, exc: BaseException) -> NoReturn:
        if isinstance(exc, PeerRefused):
            await self._refuse(context, method, exc)
        if isinstance(exc, Unavailable):
            # The node cannot serve right now (stopping, or its storage failed):
            # an expected condition, answered UNAVAILABLE without a traceback.
            self._warn.warning(("unavailable", method), "%s not served: %s", method, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{method}: {exc}")
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

    # -- identity ----------------------------------------------------------------

    def _identity_error(self, proven: int | None, claimed: int) -> PeerRefused | None:
        """Why a request claiming ``claimed`` from a peer proven as ``proven`` is refused."""
        if self._identity is None:
            return None
        if proven is None:
            return PeerRefused(
                "the peer's certificate names no member "
                f"(expected a name like {self._identity.template!r})",
                kind="identity",
                sender=claimed,
            )
        if proven != claimed:
            return PeerRefused(
                f"the certificate of member {proven} cannot speak as member {claimed}",
                kind="identity",
                sender=claimed,
            )
        return None

    def _proven(self, context: Any) -> int | None:
        return authenticated_member(context, self._identity)

    async def _method(self, context: Any, name: str, cluster_id: str) -> Any:
        """The handler's ``name`` method, or an UNIMPLEMENTED answer when it has none."""
        fn = getattr(self._handler, name, None)
        if fn is None:
            if cluster_id != self._cluster_id:
                await self._refuse_cluster(context, cluster_id)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"this server does not serve {name}")
            raise AssertionError("unreachable: abort raises")
        return fn

    async def _unary(
        self,
        method: str,
        call: Callable[[Any], Awaitable[Any]],
        request: Any,
        context: Any,
        response_type: type,
        claimed: int,
    ) -> Any:
        if request.cluster_id != self._cluster_id:
            await self._refuse_cluster(context, request.cluster_id)
        refused = self._identity_error(self._proven(context), claimed)
        if refused is not None:
            await self._refuse(context, method, refused)
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
            "request_vote",
            await self._method(context, "request_vote", request.cluster_id),
            request,
            context,
            pb.VoteResponse,
            request.candidate_id,
        )

    async def AppendEntries(self, request: pb.AppendRequest, context: Any) -> pb.AppendResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "append_entries",
            await self._method(context, "append_entries", request.cluster_id),
            request,
            context,
            pb.AppendResponse,
            request.leader_id,
        )

    async def TimeoutNow(
        self, request: pb.TimeoutNowRequest, context: Any
    ) -> pb.TimeoutNowResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "timeout_now",
            await self._method(context, "timeout_now", request.cluster_id),
            request,
            context,
            pb.TimeoutNowResponse,
            request.leader_id,
        )

    async def ReadIndex(self, request: pb.ReadIndexRequest, context: Any) -> pb.ReadIndexResponse:
        return await self._unary(  # type: ignore[no-any-return]
            "read_index",
            await self._method(context, "read_index", request.cluster_id),
            request,
            context,
            pb.ReadIndexResponse,
            request.from_id,
        )

    async def Forward(self, request: pb.ForwardRequest, context: Any) -> pb.ForwardResponse:
        forward = getattr(self._handler, "forward", None)
        if forward is None:
            if request.cluster_id != self._cluster_id:
                await self._refuse_cluster(context, request.cluster_id)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node does not take forwards")
            raise AssertionError("unreachable: abort raises")
        return await self._unary(  # type: ignore[no-any-return]
            "forward", forward, request, context, pb.ForwardResponse, request.from_id
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
        queue: asyncio.Queue[asyncio.Task[Any] | str | _Refusal | BaseException | None] = (
            asyncio.Queue()
        )
        slots = asyncio.Semaphore(self._window)
        loop = asyncio.get_running_loop()
        append = getattr(self._handler, "append_entries", None)
        cluster_id = self._cluster_id
        if append is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server does not serve appends")
            raise AssertionError("unreachable: abort raises")
        proven = self._proven(context)  # one TLS session per stream: read it once

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
                    refused = self._identity_error(proven, request.leader_id)
                    if refused is not None:
                        queue.put_nowait(_Refusal(refused))
                        return
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
                if isinstance(item, _Refusal):
                    await self._refuse(context, "append_entries", item.exc)
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
        install = await self._method(context, "install_snapshot", meta.cluster_id)
        if meta.cluster_id != self._cluster_id:
            await self._refuse_cluster(context, meta.cluster_id)
        refused = self._identity_error(self._proven(context), meta.leader_id)
        if refused is not None:
            await self._refuse(context, "install_snapshot", refused)
        chunks = ChunkReader(messages)
        try:
            ack = await install(meta, chunks)
        except SnapshotCorrupted as exc:
            await self._reject_snapshot(context, grpc.StatusCode.DATA_LOSS, str(exc))
        except PeerRefused as exc:
            await self._refuse(context, "install_snapshot", exc)
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


def _peer_of(context: Any) -> str:
    try:
        return str(context.peer())
    except Exception:
        return "?"
