"""The KV client's side of the simulated network: stubs for the real ``Client``.

The real :class:`~nexus_raft.kv.client.Client` (its router, batcher, session
pool and retry rules) runs unchanged; ``Client(stub_factory=...)`` gives it a
:class:`SimKVStub` per member address instead of a gRPC channel. A call
travels the simulated network to the member's real ``KVService`` and its
answer comes back the same way; lost answers, dead members and missed
deadlines surface as the ``grpc.aio.AioRpcError`` a real stub raises, so the
client's retry logic sees exactly what it would see over gRPC.

On the way back the serving member is checked: it must never answer a read
from a state machine that is behind its own log's snapshot.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
from collections.abc import Callable
from typing import Any

import grpc

from tests.sim_node.net import END, Conn, Endpoint, Fail, Refused, SimNetwork

__all__ = ["SimKVStub", "grpc_fail"]

_CODES = {
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "deadline": grpc.StatusCode.DEADLINE_EXCEEDED,
    "internal": grpc.StatusCode.INTERNAL,
    "unimplemented": grpc.StatusCode.UNIMPLEMENTED,
}


def grpc_fail(kind: str, detail: str) -> BaseException:
    """The error a real KV stub raises for a failed call of this kind."""
    code = _CODES.get(kind, grpc.StatusCode.UNKNOWN)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=detail)


class _Aborted(Exception):
    """``context.abort()`` ends the handler (gRPC raises too)."""


class _Context:
    """What the KV service asks of a gRPC context: the time left, and for a
    server-streaming call ``write`` (in order, over the connection), ``peer``
    and ``abort``."""

    __slots__ = ("_conn", "_deadline")

    def __init__(self, deadline: float | None, conn: Conn | None = None) -> None:
        self._deadline = deadline
        self._conn = conn

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def write(self, message: Any) -> None:
        if self._conn is None:
            raise RuntimeError("write() outside a streaming call")
        self._conn.to_client(message)

    def peer(self) -> str:
        return f"sim:{self._conn.src}" if self._conn is not None else "sim:?"

    async def abort(self, code: Any, details: str = "", **_ignored: Any) -> None:
        if self._conn is not None:
            name = getattr(code, "name", "").lower()
            self._conn.fail(details, {"deadline_exceeded": "deadline"}.get(name, "unavailable"))
        raise _Aborted(details)


async def _drive(result: Any, conn: Conn) -> None:
    """Run a streaming handler: an async iterator of answers, or a coroutine that writes."""
    if inspect.isawaitable(result):
        await result
        return
    async for answer in result:
        conn.to_client(answer)


ServeHook = Callable[[Endpoint, str, Any, Any, Any], None]
"""Called when a member answered: (endpoint, method, request, response, state before)."""


class SimKVStub:
    """A KV stub for one member address: ``await stub.Batch(request, timeout=...)``."""

    def __init__(self, net: SimNetwork, src: int, target: str,
                 before: Callable[[Endpoint, str, Any], Any], after: ServeHook) -> None:
        self._net = net
        self._src = src
        self._target = target
        self._before = before
        self._after = after

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_") or not method[:1].isupper():
            raise AttributeError(method)
        return functools.partial(self._call, method)

    def Watch(self, request: Any, timeout: float | None = None, **_ignored: Any) -> _WatchCall:
        """The server-streaming ``Watch`` call (like a gRPC ``UnaryStreamCall``)."""
        return _WatchCall(self._net, self._src, self._target, request)

    def Pipeline(self, **_ignored: Any) -> _PipelineCall:
        """The bidirectional ``Pipeline`` call (like a gRPC ``StreamStreamCall``)."""
        return _PipelineCall(self._net, self._src, self._target, self._before, self._after)

    async def _call(self, method: str, request: Any, timeout: float | None = None,
                    **_ignored: Any) -> Any:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        serve = functools.partial(self._serve, method, deadline)
        fail: Fail = grpc_fail
        return await self._net.call(self._src, self._target, request, serve, timeout, fail)

    async def _serve(self, method: str, deadline: float | None, ep: Endpoint,
                     request: Any) -> Any:
        if ep.kv is None:
            raise Refused("unimplemented", "no KV service on this member")
        handler = getattr(ep.kv, method, None)
        if handler is None:
            raise Refused("unimplemented", f"unknown method {method}")
        state = self._before(ep, method, request)
        response = await handler(request, _Context(deadline))
        self._after(ep, method, request, response, state)
        return response


class _WatchCall:
    """Client end of a ``Watch`` stream: ``read()`` (``grpc.aio.EOF`` at the end), ``cancel()``.

    The request opens a connection to the member, whose real ``KVService.Watch``
    streams its answers back in order; a broken connection (member died, link
    cut, message lost) makes ``read()`` raise UNAVAILABLE, as gRPC would.
    """

    def __init__(self, net: SimNetwork, src: int, target: str, request: Any) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._event = asyncio.Event()
        self._error: BaseException | None = None
        conn = self._conn = net.connect(src, target)
        conn.on_client = self._arrived
        conn.on_broken = self._broken
        if conn.ep is not None:
            _WatchServer(conn, conn.ep)
        conn.to_server(request)

    def _arrived(self, message: Any) -> None:
        self._queue.append(message)
        self._event.set()

    def _broken(self, why: str, kind: str) -> None:
        if self._error is None:
            self._error = grpc_fail("unavailable" if kind != "cancelled" else kind, why)
        self._event.set()

    async def read(self) -> Any:
        """The next response, or ``grpc.aio.EOF`` when the server ended the stream."""
        while True:
            if self._queue:
                message = self._queue.popleft()
                return grpc.aio.EOF if message is END else message
            if self._error is not None:
                raise self._error
            self._event.clear()
            await self._event.wait()

    def cancel(self) -> bool:
        """Cancel the call (the server's handler is cancelled too)."""
        self._conn.close()
        return True


class _WatchServer:
    """Server end of a ``Watch`` stream: runs the real handler, sends what it yields."""

    def __init__(self, conn: Conn, ep: Endpoint) -> None:
        self._conn = conn
        self._ep = ep
        self._task: asyncio.Task[None] | None = None
        conn.on_server = self._request
        conn.server_broken = self._broken

    def _request(self, request: Any) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve(request))

    async def _serve(self, request: Any) -> None:
        if self._ep.kv is None:
            self._conn.fail("no KV service on this member")
            return
        try:
            await _drive(self._ep.kv.Watch(request, _Context(None, self._conn)), self._conn)
        except _Aborted:
            return
        except Exception as exc:
            self._conn.fail(f"watch handler failed: {exc!r}", "internal")
            return
        self._conn.to_client(END)

    def _broken(self, why: str) -> None:
        if self._task is not None:
            self._task.cancel()


class _PipelineCall:
    """Client end of a ``Pipeline`` stream: ``write()``, ``read()``, ``code()``, ``cancel()``.

    Batches travel in order on one connection to the member's real
    ``KVService.Pipeline``; its answers come back as they are done. A broken
    connection fails ``write``/``read`` with UNAVAILABLE.
    """

    def __init__(self, net: SimNetwork, src: int, target: str,
                 before: Callable[[Endpoint, str, Any], Any], after: ServeHook) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._event = asyncio.Event()
        self._error: BaseException | None = None
        conn = self._conn = net.connect(src, target)
        conn.on_client = self._arrived
        conn.on_broken = self._broken
        if conn.ep is not None:
            _PipelineServer(conn, conn.ep, before, after)

    def _arrived(self, message: Any) -> None:
        self._queue.append(message)
        self._event.set()

    def _broken(self, why: str, kind: str) -> None:
        if self._error is None:
            self._error = grpc_fail(kind if kind in _CODES else "unavailable", why)
        self._event.set()

    async def write(self, message: Any) -> None:
        """Send one ``PipelineRequest``."""
        if self._error is not None:
            raise self._error
        self._conn.to_server(message)

    async def read(self) -> Any:
        """The next ``PipelineResponse``, or ``grpc.aio.EOF`` when the server ended."""
        while True:
            if self._queue:
                message = self._queue.popleft()
                return grpc.aio.EOF if message is END else message
            if self._error is not None:
                raise self._error
            self._event.clear()
            await self._event.wait()

    async def code(self) -> grpc.StatusCode:
        """OK once the server ended the stream normally."""
        return grpc.StatusCode.OK

    async def details(self) -> str:
        """Nothing to say about a normal end."""
        return ""

    def cancel(self) -> bool:
        """Cancel the call (the server's handler is cancelled too)."""
        self._conn.close()
        return True


class _PipelineServer:
    """Server end of a ``Pipeline`` stream: feeds the real handler, sends its answers."""

    def __init__(self, conn: Conn, ep: Endpoint, before: Callable[[Endpoint, str, Any], Any],
                 after: ServeHook) -> None:
        self._conn = conn
        self._ep = ep
        self._before = before
        self._after = after
        self._queue: collections.deque[Any] = collections.deque()
        self._event = asyncio.Event()
        self._asked: dict[int, tuple[Any, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        conn.on_server = self._request
        conn.server_broken = self._broken

    def _request(self, message: Any) -> None:
        self._queue.append(message)
        self._event.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _requests(self) -> Any:
        while True:
            while not self._queue:
                self._event.clear()
                await self._event.wait()
            message = self._queue.popleft()
            if message is END:
                return
            self._conn.net.stats["kv: pipelined batches"] += 1
            self._asked[message.id] = (message.batch, self._before(self._ep, "Batch",
                                                                    message.batch))
            yield message

    async def _serve(self) -> None:
        if self._ep.kv is None:
            self._conn.fail("no KV service on this member", "unimplemented")
            return
        try:
            async for answer in self._ep.kv.Pipeline(self._requests(), _Context(None)):
                asked = self._asked.pop(answer.id, None)
                if asked is not None:
                    self._after(self._ep, "Batch", asked[0], answer.batch, asked[1])
                self._conn.to_client(answer)
        except Exception as exc:
            self._conn.fail(f"pipeline handler failed: {exc!r}", "internal")
            return
        self._conn.to_client(END)

    def _broken(self, why: str) -> None:
        if self._task is not None:
            self._task.cancel()
