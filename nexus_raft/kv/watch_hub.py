"""Prefix watches over the KV state machine: stored history, then live events.

A :class:`WatchStream` is an async iterator of :class:`WatchEvent`. It first
replays retained history (``kv.events``, read from a consistent store
snapshot taken when the watch was registered), then yields the live events
that ``apply`` publishes through the :class:`WatchHub`. Positions (main
revision, sub revision) strictly increase along a stream: an event at or
before one already delivered is skipped, which is what makes the
history/live hand-over seamless. A stream watches a key range ``[start,
end)`` (a prefix is the range of keys starting with it).

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

from nexus_raft.kv.records import KeyRecord, decode_event, split_event_key

__all__ = ["PAUSE", "WatchEvent", "WatchHub", "WatchStream", "replay_history", "stored_event"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change at ``revision`` (its main revision); ``value`` None is a delete.

    ``sub`` orders the changes of one transaction; ``create_revision``,
    ``version`` and ``lease`` are the key's metadata after a put (0 after a
    delete); ``prev`` is the key's state before the change (None: absent).
    """

    revision: int
    key: bytes
    value: bytes | None
    sub: int = 0
    create_revision: int = 0
    version: int = 0
    lease: int = 0
    prev: KeyRecord | None = None

    @property
    def is_delete(self) -> bool:
        """True when the key was deleted."""
        return self.value is None


def stored_event(raw_key: bytes, raw: bytes) -> WatchEvent:
    """The :class:`WatchEvent` of one ``kv.events`` record."""
    main, sub = split_event_key(raw_key)
    key, new, prev = decode_event(raw, main)
    if new is None:
        return WatchEvent(main, key, None, sub, 0, 0, 0, prev)
    return WatchEvent(main, key, new.value, sub, new.create, new.version, new.lease, prev)


class _Pause:
    """Yielded by a replay iterator between stretches of non-matching history."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PAUSE"


PAUSE = _Pause()
"""A replay iterator yields this after scanning many events that match nothing,
so that a consumer on the event loop yields before it reads on (a watch from
revision 1 on a large history must not stall the member)."""

_REPLAY_SCAN = 256
"""Stored events scanned without a match before a replay yields :data:`PAUSE`."""


def replay_history(
    events: Iterable[tuple[bytes, bytes]], matches: Callable[[bytes], bool]
) -> Iterator[WatchEvent | _Pause]:
    """The stored events (``kv.events`` key/value pairs) whose key ``matches``,
    with :data:`PAUSE` after every 256 that do not."""
    skipped = 0
    for raw_key, value in events:
        event = stored_event(raw_key, value)
        if matches(event.key):
            skipped = 0
            yield event
        else:
            skipped += 1
            if skipped >= _REPLAY_SCAN:
                skipped = 0
                yield PAUSE


# Re-arms a stream that fell behind: checks its next revision against the
# retained history (raising Compacted if too old) and calls set_replay().
Resume = Callable[["WatchStream"], None]


class WatchStream:
    """Async iterator of the events under one prefix; close it (or ``async with``) when done."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_end",
        "_hub",
        "_limit",
        "_lock",
        "_loop",
        "_loop_thread",
        "_next",
        "_next_sub",
        "_overflow",
        "_prefix",
        "_release",
        "_replay",
        "_resume",
        "_waiter",
    )

    def __init__(
        self,
        hub: WatchHub,
        prefix: bytes,
        next_revision: int,
        limit: int,
        end: bytes | bool | None = True,
    ) -> None:
        self._hub = hub
        self._prefix = prefix
        # end True: the keys starting with prefix; None: every key >= prefix.
        self._end: bytes | None = _prefix_end(prefix) if end is True else end  # type: ignore[assignment]
        self._next = next_revision
        self._next_sub = 0
        self._limit = limit
        self._lock = threading.Lock()
        self._buffer: deque[WatchEvent] = deque()
        self._overflow = False
        self._closed = False
        self._replay: Iterator[WatchEvent | _Pause] | None = None
        self._release: Callable[[], None] | None = None
        self._resume: Resume | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    @property
    def prefix(self) -> bytes:
        """The first watched key (for a prefix watch: the prefix)."""
        return self._prefix

    @property
    def end(self) -> bytes | None:
        """The end of the watched range (exclusive; None: no bound)."""
        return self._end

    def matches(self, key: bytes) -> bool:
        """Whether ``key`` is in the watched range."""
        end = self._end
        return key >= self._prefix and (end is None or key < end)

    @property
    def next_revision(self) -> int:
        """The lowest main revision this stream can still yield."""
        return self._next

    @property
    def next_position(self) -> tuple[int, int]:
        """The lowest (main, sub) revision this stream can still yield."""
        return self._next, self._next_sub

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or after the state machine closed)."""
        return self._closed

    # --- wiring used by the state machine ----------------------------------------------

    def set_replay(
        self, events: Iterator[WatchEvent | _Pause], release: Callable[[], None]
    ) -> None:
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
                if isinstance(event, _Pause):
                    # A long stretch of history matched nothing: let the
                    # event loop run before reading on.
                    await asyncio.sleep(0)
                    continue
                if not self._take(event):
                    continue
                return event
            waiter: asyncio.Future[None] | None = None
            resume = False
            with self._lock:
                if self._overflow:
                    resume = True
                elif self._buffer:
                    event = self._buffer.popleft()
                    if not self._take(event):
                        continue
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

    def _take(self, event: WatchEvent) -> bool:
        """Advance past ``event`` if it is new for this stream; False: already delivered."""
        rev, nxt = event.revision, self._next
        if rev < nxt or (rev == nxt and event.sub < self._next_sub):
            return False
        self._next, self._next_sub = rev, event.sub + 1
        return True

    def poll(self) -> WatchEvent | None:
        """The next event if one is available without waiting, else None.

        May raise :class:`~nexus_raft.errors.Compacted` like iteration.
        """
        while not self._closed:
            replay = self._replay
            if replay is not None:
                event = next(replay, None)
                if event is None:
                    self._drop_replay()
                    continue
                if not isinstance(event, _Pause) and self._take(event):
                    return event
                continue
            with self._lock:
                if not self._overflow:
                    if not self._buffer:
                        return None
                    event = self._buffer.popleft()
                    if self._take(event):
                        return event
                    continue
            if self._resume is None:
                return None
            self._resume(self)
        return None

    def complete_revision(self) -> int:
        """A revision whose events (and all before) this stream has yielded, while it is behind.

        ``next_revision - 1`` in general (more events of ``next_revision``
        may follow), or just below the first buffered live event when no
        history is left to replay: live events come in revision order.
        """
        done = self._next - 1
        with self._lock:
            if self._replay is None and not self._overflow and self._buffer:
                done = max(done, self._buffer[0].revision - 1)
        return done

    def ready(self) -> bool:
        """Whether an event can be taken without waiting (history left or live ones buffered)."""
        return self._replay is not None or bool(self._buffer) or self._overflow

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


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WatchHub:
    """The set of open streams; ``publish`` fans events out by prefix."""

    __slots__ = ("_limit", "_lock", "_streams")

    def __init__(self, *, buffer_limit: int = 1024) -> None:
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

    def subscribe(
        self, prefix: bytes, next_revision: int, end: bytes | bool | None = True
    ) -> WatchStream:
        """A new stream of events under ``prefix`` (or in ``[prefix, end)``) from ``next_revision``.

        ``end`` True (the default) watches the keys starting with ``prefix``;
        bytes or None (no upper bound) watch that range.
        """
        stream = WatchStream(self, prefix, next_revision, self._limit, end)
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
            matches = stream.matches
            for event in events:
                if matches(event.key):
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
