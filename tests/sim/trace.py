"""Event traces: a cheap ring buffer in bulk runs, every event with ``--trace``.

Events are stored as (tick, kind, text) tuples; in bulk runs only coarse events
(faults, elections, client and membership operations) are recorded and only
the newest ``keep`` are kept, so tracing costs one tuple per event.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import TextIO


class Trace:
    """Recent simulator events; ``full`` also records and prints every message."""

    __slots__ = ("events", "full", "out")

    def __init__(self, *, full: bool = False, keep: int = 60, out: TextIO | None = None) -> None:
        self.full = full
        self.out = out if out is not None else sys.stdout
        self.events: deque[tuple[int, str, str]] = deque(maxlen=None if full else keep)

    def ev(self, tick: int, kind: str, text: str) -> None:
        """Record one event (and print it at once when tracing in full)."""
        self.events.append((tick, kind, text))
        if self.full:
            self.out.write(f"t={tick:<5} {kind:<10} {text}\n")

    def excerpt(self, last: int = 40) -> str:
        """The newest ``last`` events, one per line."""
        evs = list(self.events)[-last:]
        return "\n".join(f"  t={t:<5} {k:<10} {x}" for t, k, x in evs)
