"""Prefix watches over the KV state machine: stored history, then live events.

A :class:`WatchStream` is an async iterator of :class:`WatchEvent`. It first
replays retained history (``kv.events``, read from a consistent store
snapshot taken when the watch was registered), then yields the live events
that ``apply`` publishes through the :class:`WatchHub`. Revisions strictly
increase along a stream: an event whose revision was already delivered is
skipped, which is what makes the history/live hand-over seamless.

Threading: ``publish`` may run on any thread, including the event-loop
thread the watcher awaits on. A stream's buffer is guarded by a plain lock
and a waiting consumer is woken directly when the publisher is on the
consumer's loop thread, else with ``call_soon_threadsafe``.

Back-pressure: a stream buffers at most ``buffer_limit`` live events. A
watcher that falls further behind is switched back to reading history from
the store (its ``resume`` callback) instead of growing memory; if the
history it needs was trimmed meanwhile, it gets :class:`Compacted`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

__all__ = ["WatchEvent", "WatchHub", "WatchStream"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change at ``revision`` (the log index that made it); ``value`` None is a delete."""

    revision: int
    key: bytes
    value: bytes | None

    @property
    def is_delete(self) -> bool:
        """True when the key was deleted."""
        return self.value is None


# Re-arms a stream that fell behind: checks its next revision against the
# retained history (raising Compacted if too old) and calls set_replay().
Resume = Callable[["WatchStream"], None]


class WatchStream:
    """Async iterator of the events under one prefix; close it (or ``async with``) when done."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_hub",
        "_limit",
        "_lock",
        "_loop",
        "_loop_thread",
        "_next",
        "_overflow",
        "_prefix",
        "_release",
        "_replay",
        "_resume",
        "_waiter",
    )

    def __init__(self, hub: WatchHub, prefix: bytes, next_revision: int, limit: int) -> None:
        self._hub = hub
        self._prefix = prefix
        self._next = next_revision
        self._limit = limit
        self._lock = threading.Lock()
        self._buffer: deque[WatchEvent] = deque()
        self._overflow = False
        self._closed = False
        self._replay: Iterator[WatchEvent] | None = None
        self._release: Callable[[], None] | None = None
        self._resume: Resume | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    @property
    def prefix(self) -> bytes:
        """The watched key prefix."""
        return self._prefix

    @property
    def next_revision(self) -> int:
        """The lowest revision this stream can still yield."""
        return self._next

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or after the state machine closed)."""
        return self._closed

    # --- wiring used by the state machine ----------------------------------------------

    def set_replay(self, events: Iterator[WatchEvent], release: Callable[[], None]) -> None:
        """Replay ``events`` (history) before live events; ``release`` frees their source.

        Called with publishing blocked, so the buffer is reset in step with
        the history's end: nothing is lost, duplicates are skipped.
        """
        self._drop_replay()
        with self._lock:
            self._buffer.clear()
            self._overflow = False
        self._replay = events
        self._release = release

    def set_resume(self, resume: Resume) -> None:
        """How to re-read history after an overflow (the state machine's callback)."""
        self._resume = resume

    def push(self, event: WatchEvent) -> None:
        """Queue a live event (any thread)."""
        with self._lock:
            if self._closed:
                return
            if self._overflow:
                return
            if len(self._buffer) >= self._limit:
                # Too far behind: drop the buffer and catch up from history later.
                self._buffer.clear()
                self._overflow = True
            else:
                self._buffer.append(event)
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            self._wake(waiter)

    def mark_behind(self) -> None:
        """Force a history re-read before the next live event (after a snapshot restore)."""
        with self._lock:
            self._buffer.clear()
            self._overflow = True
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            self._wake(waiter)

    def _wake(self, waiter: asyncio.Future[None]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            if not waiter.done():
                waiter.set_result(None)
            return
        try:
            loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    # --- async iteration --------------------------------------------------------------

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._closed:
                raise StopAsyncIteration
            replay = self._replay
            if replay is not None:
                event = next(replay, None)
                if event is None:
                    self._drop_replay()
                    continue
                if event.revision < self._next:
                    continue
                self._next = event.revision + 1
                return event
            waiter: asyncio.Future[None] | None = None
            resume = False
            with self._lock:
                if self._overflow:
                    resume = True
                elif self._buffer:
                    event = self._buffer.popleft()
                    if event.revision < self._next:
                        continue
                    self._next = event.revision + 1
                    return event
                else:
                    loop = asyncio.get_running_loop()
                    self._loop = loop
                    self._loop_thread = threading.get_ident()
                    waiter = loop.create_future()
                    self._waiter = waiter
            if resume:
                if self._resume is None:
                    raise StopAsyncIteration
                self._resume(self)  # may raise Compacted
                continue
            assert waiter is not None
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drop_replay(self) -> None:
        release = self._release
        self._replay = None
        self._release = None
        if release is not None:
            release()

    def close(self) -> None:
        """Stop the stream: iteration ends, the history view is released. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._buffer.clear()
            waiter = self._waiter
            self._waiter = None
        self._hub.unsubscribe(self)
        self._drop_replay()
        if waiter is not None:
            self._wake(waiter)

    def __repr__(self) -> str:
        return f"WatchStream(prefix={self._prefix!r}, next={self._next}, closed={self._closed})"


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WatchHub:
    """The set of open streams; ``publish`` fans events out by prefix."""

    __slots__ = ("_limit", "_lock", "_streams")

    def __init__(self, *, buffer_limit: int = 10_000) -> None:
        if not isinstance(buffer_limit, int) or isinstance(buffer_limit, bool):
            raise TypeError(f"buffer_limit must be an int, not {type(buffer_limit).__name__}")
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be positive")
        self._limit = buffer_limit
        self._lock = threading.Lock()
        self._streams: list[WatchStream] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def subscribe(self, prefix: bytes, next_revision: int) -> WatchStream:
        """A new stream of events under ``prefix`` from ``next_revision`` on."""
        stream = WatchStream(self, prefix, next_revision, self._limit)
        with self._lock:
            self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: WatchStream) -> None:
        """Forget ``stream`` (its close() calls this)."""
        with self._lock:
            try:
                self._streams.remove(stream)
            except ValueError:
                pass

    def publish(self, events: list[WatchEvent]) -> None:
        """Hand freshly applied events (ascending revision) to matching streams."""
        if not events:
            return
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            prefix = stream.prefix
            for event in events:
                if event.key.startswith(prefix):
                    stream.push(event)

    def mark_all_behind(self) -> None:
        """Every stream re-reads history before its next live event."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.mark_behind()

    def close(self) -> None:
        """Close every stream."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
