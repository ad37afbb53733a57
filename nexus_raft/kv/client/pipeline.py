"""The client side of the ``Pipeline`` RPC: one long-lived batch stream per member.

:class:`Pipe` sends ``BatchRequest`` messages on one open stream, each with
a fresh id, and hands every answer to the caller waiting for that id. It
behaves like the unary ``Batch`` stub call it replaces, so the router's
retry logic stays the same: :meth:`Pipe.call` returns the ``BatchResponse``
or raises ``grpc.aio.AioRpcError`` (``DEADLINE_EXCEEDED`` when no answer came
in time, the stream's own status when it broke, ``UNAVAILABLE`` when it
ended early). A broken stream fails every request waiting on it (their
outcome is unknown, exactly like a unary call that broke) and the next call
opens a new one. ``UNIMPLEMENTED`` (a member without the Pipeline RPC) is
remembered in :attr:`Pipe.unimplemented` so the router falls back to unary
calls for that member.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import grpc

from nexus_raft.kv.wire import kv_pb2

__all__ = ["Pipe"]

_log = logging.getLogger(__name__)


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def _expire(fut: asyncio.Future[Any], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(
            _error(grpc.StatusCode.DEADLINE_EXCEEDED, f"Deadline Exceeded ({timeout:.2f}s)")
        )


class Pipe:
    """A ``Pipeline`` stream to one member (opened on first use, reopened after a break).

    Invariant: ``_pending`` maps the id of every request written on the
    current stream and not yet answered, expired or failed to its future.
    """

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._write_lock = asyncio.Lock()
        self._closed = False
        self.unimplemented = False
        """The member answered UNIMPLEMENTED: it has no Pipeline RPC (use unary Batch)."""

    async def call(self, request: Any, timeout: float) -> Any:
        """Send one ``BatchRequest``; its ``BatchResponse`` (or ``AioRpcError``)."""
        if self._closed:
            raise _error(grpc.StatusCode.CANCELLED, "the client is closed")
        loop = asyncio.get_running_loop()
        call = self._call
        if call is None:
            call = self._open(loop)
        rid = next(self._ids)
        fut: asyncio.Future[Any] = loop.create_future()
        pending = self._pending
        pending[rid] = fut
        handle = loop.call_later(timeout, _expire, fut, timeout)
        try:
            message = kv_pb2.PipelineRequest(id=rid, batch=request)
            try:
                async with self._write_lock:
                    await call.write(message)
            except grpc.aio.AioRpcError as exc:
                self._broken(call, exc)
                raise
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                err = _error(grpc.StatusCode.UNAVAILABLE, f"stream broke: {exc}")
                self._broken(call, err)
                raise err from None
            return await fut
        finally:
            handle.cancel()
            pending.pop(rid, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # raised above or superseded by the write's error

    def _open(self, loop: asyncio.AbstractEventLoop) -> Any:
        call = self._stub.Pipeline()
        self._call = call
        self._reader = loop.create_task(self._read(call))
        return call

    async def _read(self, call: Any) -> None:
        pending = self._pending
        try:
            while True:
                answer = await call.read()
                if answer is grpc.aio.EOF:
                    code = await call.code()
                    if code == grpc.StatusCode.UNIMPLEMENTED:
                        self.unimplemented = True
                    details = await call.details()
                    self._broken(
                        call,
                        _error(
                            grpc.StatusCode.UNAVAILABLE
                            if code == grpc.StatusCode.OK
                            else code,
                            details or "the member ended the stream",
                        ),
                    )
                    return
                fut = pending.pop(answer.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(answer.batch)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.unimplemented = True
            self._broken(call, exc)
        except asyncio.CancelledError:
            self._broken(call, _error(grpc.StatusCode.CANCELLED, "the client is closed"))
            raise
        except Exception as exc:  # e.g. InvalidStateError from a call torn down under us
            self._broken(call, _error(grpc.StatusCode.UNAVAILABLE, f"stream broke: {exc}"))

    def _broken(self, call: Any, error: grpc.aio.AioRpcError) -> None:
        """``call`` is unusable: fail everything waiting on it; the next call reopens."""
        if self._call is not call:
            return
        self._call = None
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)
        call.cancel()
        _log.debug("pipeline stream broke (%s); %d request(s) failed", error.code(), len(pending))

    async def close(self) -> None:
        """Fail what waits and end the stream (idempotent)."""
        self._closed = True
        call = self._call
        if call is not None:
            self._broken(call, _error(grpc.StatusCode.CANCELLED, "the client is closed"))
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):
                pass
