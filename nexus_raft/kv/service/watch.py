"""Serving ``Watch`` with bounded cost per client connection.

A watcher that reads slowly, or opens streams and never reads them, must not
slow the member's writes or grow its memory without bound. The policy
(:class:`WatchPolicy`, one per service):

* **streams per connection**: at most ``max_per_connection`` (default 1024)
  open watches per client connection (one HTTP/2 connection, as gRPC's
  ``context.peer()`` names it); one more is answered at once with
  ``TOO_LARGE`` in the response error (its message names the limit);
* **buffered events per stream**: the state machine's watch hub keeps at most
  its ``buffer_limit`` live events for a stream (1024 by default); a stream
  further behind holds none and catches up from the stored history when it
  reads again (or gets ``COMPACTED`` if that history was trimmed);
* **unread streams**: a message the client has not accepted within
  ``send_timeout`` seconds (default 30) ends the stream with gRPC status
  ``RESOURCE_EXHAUSTED`` ("watch not read for 30 s"), logged at WARNING,
  rate-limited; a client that reads resumes from its last revision;
* **batching**: events that are already waiting go out together, up to
  ``max_batch`` events (default 256) or ``max_batch_bytes`` of keys and
  values (default 64 KiB) per message, so a busy watcher costs one send per
  batch rather than one per event, and a message waiting on an unread
  stream stays small.

History replay yields to the event loop between long stretches of
non-matching history, so a watch from revision 1 never stalls the member.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from nexus_raft.kv.wire import error_from_exception, kv_pb2
from nexus_raft.transport.ratelimit import LogLimiter

__all__ = ["WatchPolicy", "peer_of", "watch_messages", "write_all"]

_log = logging.getLogger("nexus_raft.kv.service.kv")
_warn = LogLimiter(_log)


@dataclass
class WatchPolicy:
    """The limits of :func:`serve_watch` (see the module docstring)."""

    max_per_connection: int = 1024
    send_timeout: float = 30.0
    max_batch: int = 256
    max_batch_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, peer: str) -> bool:
        """Count a new watch on ``peer``'s connection; False when it has too many."""
        with self._lock:
            n = self._open.get(peer, 0)
            if n >= self.max_per_connection:
                return False
            self._open[peer] = n + 1
            return True

    def release(self, peer: str) -> None:
        """A watch on ``peer``'s connection ended."""
        with self._lock:
            n = self._open.get(peer, 0) - 1
            if n > 0:
                self._open[peer] = n
            else:
                self._open.pop(peer, None)

    def open_on(self, peer: str) -> int:
        """Open watches on ``peer``'s connection (for tests and status)."""
        with self._lock:
            return self._open.get(peer, 0)


def _size(e: Any) -> int:
    return len(e.key) + (len(e.value) if e.value else 0)


def _event(e: Any) -> Any:
    return kv_pb2.WatchEvent(
        revision=e.revision, key=e.key, deleted=e.value is None, value=e.value or b""
    )


async def watch_messages(
    open_stream: Any, request: Any, peer: str, policy: WatchPolicy
) -> AsyncGenerator[Any, None]:
    """The ``WatchResponse`` messages of one ``Watch`` call from ``peer``'s connection.

    ``open_stream(request)`` checks the request and returns ``(stream,
    revision)``: the state machine's watch stream and its current revision
    (it may raise; the error is answered in the response). Closing this
    generator releases the connection's slot and the stream.
    """
    if not policy.acquire(peer):
        _warn.warning(("watch-limit", peer), "watch refused: %s already has %d open watches",
                      peer, policy.max_per_connection)  # fmt: skip
        yield kv_pb2.WatchResponse(
            error=kv_pb2.Error(
                code=kv_pb2.TOO_LARGE,
                message=f"too many watches on one connection (limit "
                f"{policy.max_per_connection}); close some or use another connection",
            )
        )
        return
    stream: Any = None
    try:
        try:
            stream, revision = open_stream(request)
        except Exception as exc:
            yield kv_pb2.WatchResponse(error=error_from_exception(exc))
            return
        yield kv_pb2.WatchResponse(revision=revision)
        poll = getattr(stream, "poll", None)
        while True:
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Compacted, the state machine closing, ...
                yield kv_pb2.WatchResponse(error=error_from_exception(exc))
                return
            events = [first]
            size = _size(first)
            while poll is not None and len(events) < policy.max_batch:
                if size >= policy.max_batch_bytes:
                    break
                more = poll()
                if more is None:
                    break
                events.append(more)
                size += _size(more)
            yield kv_pb2.WatchResponse(
                events=[_event(e) for e in events], revision=events[-1].revision
            )
    finally:
        policy.release(peer)
        if stream is not None:
            close = getattr(stream, "close", None)
            if close is not None:
                outcome = close()
                if asyncio.iscoroutine(outcome):
                    await outcome


async def write_all(messages: AsyncIterator[Any], context: Any, policy: WatchPolicy) -> None:
    """Send ``messages`` with ``context.write``; a message the client does not
    accept within ``policy.send_timeout`` ends the call (RESOURCE_EXHAUSTED),
    after ``messages`` was closed (its slot and stream released)."""
    aclose = getattr(messages, "aclose", None)
    try:
        async for message in messages:
            try:
                await asyncio.wait_for(context.write(message), policy.send_timeout)
            except asyncio.TimeoutError:
                peer = _peer(context)
                _warn.warning(("watch-unread", peer), "watch from %s ended: not read for %g s",
                              peer, policy.send_timeout)  # fmt: skip
                if aclose is not None:
                    await aclose()
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"watch not read for {policy.send_timeout:g} s; resume from the last "
                    "revision",
                )
    finally:
        if aclose is not None:
            await aclose()


def peer_of(context: Any) -> str:
    """The connection ``context``'s call came on (gRPC's ``context.peer()``)."""
    return _peer(context)


def _peer(context: Any) -> str:
    try:
        return str(context.peer())
    except Exception:
        return "?"
