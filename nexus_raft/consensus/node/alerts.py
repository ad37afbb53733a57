"""Operator warnings of a RaftNode, rate-limited so a persistent problem logs once in a while.

Each kind of warning (per peer where it concerns one) is logged at most once
per ``interval`` seconds; the next line after a quiet period says how many
were held back. The conditions themselves are detected where they happen
(the driver times fsyncs, the node hears of unreachable peers) or by the
node's periodic health check (:mod:`~nexus_raft.consensus.node.health`):

* a peer unreachable (after a leader has not heard from it for an election
  timeout) and reachable again;
* a peer that answers as a member of another cluster;
* quorum lost (no leader known for two election timeouts, or a leader that
  hears from too few voters) and regained;
* an fsync slower than ``slow_fsync_seconds`` (100 ms);
* apply falling behind commit (by more than ``apply_lag_entries`` for a
  while).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

__all__ = ["Alerts", "RateLimiter"]

_log = logging.getLogger("nexus_raft.consensus.node.alerts")


class RateLimiter:
    """``allow(key)`` is True at most once per ``interval`` seconds per key.

    ``held(key)`` is how many calls were refused since the last allowed one
    (reset by the allowed call that reports it).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable) -> bool:
        """Whether a message for ``key`` may be logged now."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def take_held(self, key: Hashable) -> int:
        """How many messages for ``key`` were held back since the last one logged (then 0)."""
        return self._held.pop(key, 0)

    def forget(self, key: Hashable) -> None:
        """Let the next message for ``key`` through at once."""
        self._last.pop(key, None)
        self._held.pop(key, None)


class Alerts:
    """The rate-limited warnings of one node (see the module docstring)."""

    def __init__(
        self,
        node_id: int,
        *,
        interval: float = 30.0,
        slow_fsync_seconds: float = 0.1,
        apply_lag_entries: int = 1000,
        logger: logging.Logger = _log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.slow_fsync_seconds = slow_fsync_seconds
        self.apply_lag_entries = apply_lag_entries
        self._limiter = RateLimiter(interval, clock)
        self._log = logger
        self.quorum_lost = False
        self._unreachable: set[int] = set()

    def _warn(self, key: Hashable, message: str, *args: object) -> None:
        if not self._limiter.allow(key):
            return
        held = self._limiter.take_held(key)
        suffix = f" ({held} similar warnings held back)" if held else ""
        self._log.warning("node %d: " + message + suffix, self.node_id, *args)

    # --- conditions ---------------------------------------------------------------------

    def slow_fsync(self, seconds: float, entries: int) -> None:
        """A save (one fsync) took ``seconds``."""
        self._warn(
            "fsync",
            "slow fsync: saving %d entries took %.0f ms (over %.0f ms); the disk is overloaded",
            entries,
            seconds * 1000,
            self.slow_fsync_seconds * 1000,
        )

    def peer_unreachable(self, peer: int, address: str | None, silent_for: float | None) -> None:
        """``peer`` could not be reached and has been silent for ``silent_for`` s (None: ever)."""
        self._unreachable.add(peer)
        since = "never answered" if silent_for is None else f"silent for {silent_for:.1f}s"
        self._warn(("unreachable", peer), "peer %d at %s is unreachable (%s)", peer,
                   address or "an unknown address", since)  # fmt: skip

    def peer_reachable(self, peer: int) -> None:
        """``peer`` answered again (logged only after an unreachable warning)."""
        if peer in self._unreachable:
            self._unreachable.discard(peer)
            self._limiter.forget(("unreachable", peer))
            self._log.info("node %d: peer %d is reachable again", self.node_id, peer)

    def peer_other_cluster(self, peer: int, address: str | None, detail: str) -> None:
        """``peer`` answered as a member of another cluster."""
        self._warn(("cluster", peer), "peer %d at %s belongs to another cluster: %s", peer,
                   address or "an unknown address", detail)  # fmt: skip

    def quorum(self, ok: bool, detail: str) -> None:
        """Report the quorum check's outcome; logs transitions (lost: rate-limited)."""
        if ok:
            if self.quorum_lost:
                self.quorum_lost = False
                self._limiter.forget("quorum")
                self._log.warning("node %d: quorum regained: %s", self.node_id, detail)
            return
        self.quorum_lost = True
        self._warn("quorum", "quorum lost: %s", detail)

    def apply_behind(self, commit: int, applied: int, for_seconds: float) -> None:
        """Apply is ``commit - applied`` entries behind and has been for ``for_seconds``."""
        self._warn(
            "apply",
            "apply is falling behind commit: applied %d, committed %d (%d behind for %.1fs)",
            applied,
            commit,
            commit - applied,
            for_seconds,
        )
