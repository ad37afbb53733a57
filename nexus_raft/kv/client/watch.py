"""WatchStream: a prefix watch that survives member failures.

The stream reads the server-streaming ``Watch`` RPC from one member. When that
member goes away (killed, restarted, removed), the stream reconnects to
another one and asks for the history from just after the last revision it
delivered, so no event is lost and none is delivered twice:

* ``position`` is the highest revision already covered: the last delivered
  event's revision, or, for a live-only watch (``start_revision`` 0), the
  serving member's revision when the first stream was established;
* one revision may hold many events (a prefix delete, a transaction), and a
  member may send them in several messages, so a stream can break in the
  middle of a revision: the stream counts the events it received at
  ``position`` and, when it has some, resumes *at* ``position`` and skips
  that many (a revision's events always come in the same order);
  otherwise it resumes after ``position``;
* replayed events (revision below the resume point, or the counted ones at
  it) are dropped, so a lagging member's repeats are harmless;
* reconnects back off; if no member accepts the watch for ``timeout``
  seconds in a row, the iterator raises ``Unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from typing import Any

import grpc

from nexus_raft.errors import NexusRaftError, Unavailable
from nexus_raft.kv.client.router import Backoff, Router
from nexus_raft.kv.client.types import WatchEvent
from nexus_raft.kv.wire import OK, RETRYABLE_CODES, exception_from_error, kv_pb2

__all__ = ["WatchStream"]

_log = logging.getLogger(__name__)

_ALL = sys.maxsize  # "skip every replayed event at this revision"


class WatchStream:
    """Async iterator of :class:`WatchEvent` under one prefix; ``close()`` or ``async with``."""

    def __init__(
        self,
        router: Router,
        *,
        cluster_id: str,
        prefix: bytes,
        start_revision: int,
        timeout: float,
    ) -> None:
        self._router = router
        self._cluster_id = cluster_id
        self._prefix = prefix
        self._live_only = start_revision == 0
        self._position = max(0, start_revision - 1)
        # Events received at revision ``position`` (0: none, or not counted).
        self._seen_at_position = 0
        # Replays to drop: every event below ``_replay_rev`` and the first
        # ``_replay_skip`` events at it.
        self._replay_rev = self._position
        self._replay_skip = _ALL
        self._established = False
        self._timeout = timeout
        self._call: Any = None
        self._target = ""
        self._buffer: deque[WatchEvent] = deque()
        self._backoff = Backoff(router.rng)
        self._closed = False
        self.reconnects = 0
        """How many times the stream moved to a (possibly other) member."""

    @property
    def position(self) -> int:
        """Highest revision covered so far (resume point minus one)."""
        return self._position

    @property
    def endpoint(self) -> str:
        """The member this watch is (or was last) connected to ("" before the first event)."""
        return self._target

    def __aiter__(self) -> WatchStream:
        return self

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop watching (idempotent); iteration then ends."""
        self._closed = True
        self._drop_call()

    def _drop_call(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def __anext__(self) -> WatchEvent:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._timeout
        last: NexusRaftError | None = None
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                raise StopAsyncIteration
            if loop.time() >= give_up_at:
                prefix = self._prefix.decode("utf-8", "backslashreplace")
                raise Unavailable(
                    f"watch on '{prefix}': no member served it for {self._timeout:.1f}s"
                    + (f"; last failure: {last}" if last else "")
                )
            if self._call is None:
                self._open()
            target = self._target
            try:
                resp = await self._call.read()
            except grpc.aio.AioRpcError as err:
                if self._closed:
                    raise StopAsyncIteration from None
                last = Unavailable(f"{target}: watch stream broke ({self._router.failure(err)})")
                await self._reconnect_later(target, last)
                continue
            except asyncio.CancelledError:
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            if resp is grpc.aio.EOF:
                last = Unavailable(f"{target}: watch stream ended")
                await self._reconnect_later(target, last)
                continue
            if resp.error.code != OK:
                exc = exception_from_error(resp.error, where=target)
                if resp.error.code not in RETRYABLE_CODES:
                    self._drop_call()
                    raise exc
                last = exc
                await self._reconnect_later(target, exc)
                continue
            # A healthy message: the give-up clock restarts.
            give_up_at = loop.time() + self._timeout
            self._backoff.reset()
            if not self._established:
                self._established = True
                if self._live_only and int(resp.revision) > self._position:
                    self._position = int(resp.revision)
                    self._seen_at_position = 0
                    self._replay_rev, self._replay_skip = self._position, _ALL
            for pb in resp.events:
                event = WatchEvent.from_pb(pb)
                rev = event.revision
                if rev < self._replay_rev:
                    continue  # already delivered before a reconnect
                if rev == self._replay_rev and self._replay_skip > 0:
                    self._replay_skip -= 1
                    continue
                if rev > self._position:
                    self._position = rev
                    self._seen_at_position = 0
                self._seen_at_position += 1
                self._buffer.append(event)

    def _open(self) -> None:
        self._target = self._router.current()
        if self._seen_at_position:
            # The last revision may have been cut short: ask for it again and
            # drop the events of it already received.
            start = self._position
            self._replay_rev, self._replay_skip = self._position, self._seen_at_position
        else:
            start = self._position + 1 if self._established or not self._live_only else 0
            self._replay_rev, self._replay_skip = self._position, _ALL
        request = kv_pb2.WatchRequest(
            cluster_id=self._cluster_id, prefix=self._prefix, start_revision=start
        )
        self._call = self._router.stub(self._target).Watch(request)

    async def _reconnect_later(self, target: str, why: NexusRaftError) -> None:
        _log.debug("watch: moving away from %s: %s", target, why)
        self._drop_call()
        self._router.mark_failed(target)
        self.reconnects += 1
        await asyncio.sleep(self._backoff.delay())
