"""LogLimiter: warnings that cannot flood the log.

A hostile or broken peer can send thousands of refused requests a second;
each refusal deserves a WARNING, but not thousands of lines. A limiter lets
the first ``burst`` messages of a key through per ``interval`` seconds and
folds the rest into a count reported with the next message that passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["LogLimiter"]


class LogLimiter:
    """Rate-limits log records per key (e.g. the refusal reason and the sender).

    Invariant: for each key at most ``burst`` records are emitted per
    ``interval``; every suppressed record is counted and the count is added
    to the next emitted record of that key (nothing is lost silently).
    At most ``max_keys`` keys are remembered; the oldest are forgotten.
    """

    __slots__ = ("_burst", "_clock", "_interval", "_keys", "_logger", "_max_keys")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        burst: int = 3,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("interval must be > 0, burst and max_keys >= 1")
        self._logger = logger
        self._interval = float(interval)
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        # key -> [window start, emitted in window, suppressed since last emitted]
        self._keys: dict[object, list[float]] = {}

    def log(self, level: int, key: object, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` is over its budget; True if logged."""
        now = self._clock()
        state = self._keys.get(key)
        if state is None or now - state[0] >= self._interval:
            suppressed = int(state[2]) if state is not None else 0
            if state is None and len(self._keys) >= self._max_keys:
                self._keys.pop(next(iter(self._keys)))
            state = self._keys[key] = [now, 0.0, float(suppressed)]
        if state[1] >= self._burst:
            state[2] += 1
            return False
        state[1] += 1
        suppressed = int(state[2])
        state[2] = 0.0
        if suppressed:
            self._logger.log(level, msg + " (%d similar messages suppressed)", *args, suppressed)
        else:
            self._logger.log(level, msg, *args)
        return True

    def warning(self, key: object, msg: str, *args: object) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args)
