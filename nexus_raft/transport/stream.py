"""HeartbeatStream: the pipelined, self-reconnecting append/heartbeat stream.

Delivery contract (what a caller can rely on):

* Every request ``send()`` returns from normally is accounted for exactly
  once: either its ``AppendResponse`` is yielded by the iteration (responses
  come in request order), or it is listed in the ``lost`` tuple of a
  :class:`StreamReset` yielded in its place, in order.
* A ``send()`` that raises did not send its request; it appears nowhere.
* When the connection breaks (peer restart, network error, the peer refusing
  the stream), iteration yields one :class:`StreamReset` carrying the mapped
  error and the requests that were sent on that connection but never
  answered. Whether the peer applied them is unknown; Raft treats them as
  lost messages (the leader resends from its progress tracking).
* After a break, ``send()`` raises :class:`PeerUnavailable` without touching
  the network until the backoff delay has passed (0.05 s doubling to 1 s,
  reset by the first response on a new connection); the next ``send()``
  after that opens a new stream. So the stream recovers by itself once the
  peer is back, while a dead peer costs one quick exception per send.

The caller must keep iterating (typically in its own task) for responses and
resets to be observed; sending alone never reads.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport.errors import (
    ClientClosed,
    PeerUnavailable,
    TransportError,
    from_rpc_error,
)

__all__ = ["HeartbeatStream", "StreamReset"]

_log = logging.getLogger(__name__)

_BACKOFF_INITIAL = 0.05
_BACKOFF_MAX = 1.0


@dataclass(frozen=True, slots=True)
class StreamReset:
    """Yielded by a :class:`HeartbeatStream` when its connection broke.

    ``lost`` are the requests sent on the broken connection that got no
    response, in send order; ``error`` says why the connection ended.
    """

    error: TransportError
    lost: tuple[pb.AppendRequest, ...]


def _being_cancelled() -> bool:
    """True if the current task has a cancellation request pending (3.11+;
    on 3.10 this cannot be told apart and is assumed not)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


class _Conn:
    """One gRPC ``Stream`` call and the requests awaiting its responses.

    Invariant: ``pending`` holds, in order, the requests written (or being
    written) on ``call`` that have neither been answered nor reported lost.
    ``opened``: the first request, the one carrying the cluster id, went out.
    """

    __slots__ = ("call", "opened", "pending", "reported")

    def __init__(self, call: Any) -> None:
        self.call = call
        self.pending: collections.deque[pb.AppendRequest] = collections.deque()
        self.reported = False
        self.opened = False


class HeartbeatStream:
    """A bidirectional append/heartbeat stream to one peer (see the module docs).

    Use as ``async with client.heartbeat_stream() as hb``; ``await hb.send(req)``
    and ``async for item in hb`` where ``item`` is an ``AppendResponse`` or a
    :class:`StreamReset`. The client stamps (when 0) ``to`` on each request
    and ``cluster_id`` on the first request of each underlying call only: the
    server checks the id once per call, so later requests save its bytes.
    """

    def __init__(
        self,
        open_call: Callable[[], Any],
        stamp: Callable[[pb.AppendRequest], None],
        peer: str,
        on_close: Callable[[HeartbeatStream], None] | None = None,
    ) -> None:
        self._open_call = open_call
        self._stamp = stamp
        self._peer = peer
        self._on_close = on_close
        self._send_conn: _Conn | None = None
        self._read_conns: collections.deque[_Conn] = collections.deque()
        self._conn_added = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._retry_at = 0.0
        self._backoff = _BACKOFF_INITIAL

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> HeartbeatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran (or the client was closed)."""
        return self._closed

    async def aclose(self) -> None:
        """Close the stream; unanswered requests are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for conn in self._read_conns:
            conn.call.cancel()
        self._read_conns.clear()
        self._send_conn = None
        self._conn_added.set()  # wake a reader waiting for a connection
        if self._on_close is not None:
            self._on_close(self)

    # -- sending ---------------------------------------------------------------

    def _broken(self, conn: _Conn) -> None:
        """``conn`` failed: stop sending on it and start the backoff window."""
        if self._send_conn is conn:
            self._send_conn = None
            self._retry_at = time.monotonic() + self._backoff * (0.5 + random.random() / 2)
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    async def send(self, request: pb.AppendRequest) -> None:
        """Send one request (waits while gRPC flow control pushes back).

        Raises :class:`PeerUnavailable` while the connection is down (the
        request was not sent), :class:`ClientClosed` after close.
        """
        if not isinstance(request, pb.AppendRequest):
            raise TypeError(f"request must be AppendRequest, not {type(request).__name__}")
        if self._closed:
            raise ClientClosed("heartbeat stream is closed", peer=self._peer, method="Stream")
        self._stamp(request)
        async with self._send_lock:
            conn = self._send_conn
            if conn is None:
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    raise PeerUnavailable(
                        f"stream to {self._peer} is reconnecting (next attempt in {wait:.2f}s)",
                        peer=self._peer,
                        method="Stream",
                    )
                conn = _Conn(self._open_call())
                self._send_conn = conn
                self._read_conns.append(conn)
                self._conn_added.set()
            if conn.opened:
                request.ClearField("cluster_id")
            conn.opened = True
            conn.pending.append(request)
            try:
                await conn.call.write(request)
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                self._broken(conn)
                if not conn.reported and conn.pending and conn.pending[-1] is request:
                    conn.pending.pop()
                    if isinstance(exc, grpc.RpcError):
                        raise from_rpc_error(exc, peer=self._peer, method="Stream") from None
                    raise PeerUnavailable(
                        f"stream to {self._peer} broke: {exc}", peer=self._peer, method="Stream"
                    ) from None
                # Otherwise the reader already reported the request in a StreamReset.

    # -- receiving ---------------------------------------------------------------

    def __aiter__(self) -> HeartbeatStream:
        return self

    async def __anext__(self) -> pb.AppendResponse | StreamReset:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if not self._read_conns:
                self._conn_added.clear()
                await self._conn_added.wait()
                continue
            conn = self._read_conns[0]
            try:
                resp = await conn.call.read()
            except asyncio.CancelledError:
                # aclose() cancels the gRPC call under a blocked read, which
                # surfaces here as CancelledError: end the iteration instead,
                # unless this task itself is being cancelled.
                if self._closed and not _being_cancelled():
                    raise StopAsyncIteration from None
                raise
            except grpc.RpcError as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                return self._reset(conn, from_rpc_error(exc, peer=self._peer, method="Stream"))
            except asyncio.InvalidStateError as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                return self._reset(
                    conn, PeerUnavailable(str(exc), peer=self._peer, method="Stream")
                )
            if resp is grpc.aio.EOF:
                if self._closed:
                    raise StopAsyncIteration
                err: TransportError = PeerUnavailable(
                    f"peer {self._peer} ended the stream", peer=self._peer, method="Stream"
                )
                code = await conn.call.code()
                if code != grpc.StatusCode.OK:
                    err = PeerUnavailable(
                        f"peer {self._peer} ended the stream with {code.name}",
                        peer=self._peer,
                        method="Stream",
                    )
                return self._reset(conn, err)
            if conn.pending:
                conn.pending.popleft()
            else:  # the peer answered more than we asked: a protocol violation
                conn.call.cancel()
                return self._reset(
                    conn,
                    PeerUnavailable("peer sent an unsolicited response", peer=self._peer),
                )
            self._backoff = _BACKOFF_INITIAL
            response: pb.AppendResponse = resp
            return response

    def _reset(self, conn: _Conn, error: TransportError) -> StreamReset:
        self._broken(conn)
        conn.reported = True
        lost = tuple(conn.pending)
        conn.pending.clear()
        if self._read_conns and self._read_conns[0] is conn:
            self._read_conns.popleft()
        conn.call.cancel()
        _log.debug("stream to %s reset (%s); %d request(s) lost", self._peer, error, len(lost))
        return StreamReset(error=error, lost=lost)
