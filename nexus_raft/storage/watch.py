"""Prefix watches: a Subscriber receives the writes made through its Store.

The store publishes while holding its write lock, right after the LevelDB
write returns, so every subscriber sees events in the order the writes were
applied (a batch publishes its operations in batch order). Publishing only
appends to an in-memory queue; it never blocks on a slow consumer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple


class Event(NamedTuple):
    """One write seen by a watcher: ``value`` is None for a removal."""

    key: bytes
    value: bytes | None


class Subscriber:
    """Blocking, thread-safe stream of :class:`Event` for one key prefix of one tree.

    Iterate it (blocks until the next event; ends once closed and drained) or
    poll with :meth:`get`. The queue is unbounded: a subscriber that is never
    read keeps every event, so close the ones you no longer need.
    """

    __slots__ = ("_closed", "_cond", "_events", "_on_close", "prefix")

    def __init__(self, prefix: bytes, on_close: Callable[[Subscriber], None]) -> None:
        self.prefix = prefix
        self._cond = threading.Condition(threading.Lock())
        self._events: deque[Event] = deque()
        self._closed = False
        self._on_close = on_close

    # --- producer side (called by the store under its write lock) -------------

    def _push(self, event: Event) -> None:
        with self._cond:
            if not self._closed:
                self._events.append(event)
                self._cond.notify()

    def _shutdown(self) -> None:
        """Close without unregistering (the store is already dropping it)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- consumer side ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the tree/store went away."""
        return self._closed

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever).

        Returns None when the timeout passes, or when the subscriber is closed
        and every queued event was already returned (check :attr:`closed`).
        """
        if timeout is not None and not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        with self._cond:
            if not self._events and not self._closed:
                self._cond.wait_for(lambda: self._events or self._closed, timeout)
            if self._events:
                return self._events.popleft()
            return None

    def pending(self) -> int:
        """How many events are queued and not yet returned."""
        with self._cond:
            return len(self._events)

    def close(self) -> None:
        """Stop receiving events; idempotent. Already queued events can still be read."""
        if self._closed:
            return
        self._shutdown()
        self._on_close(self)

    def __iter__(self) -> Subscriber:
        return self

    def __next__(self) -> Event:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Subscriber prefix={self.prefix!r} {state}>"
