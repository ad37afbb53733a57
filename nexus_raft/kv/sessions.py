"""Client sessions: exactly-once writes across retries.

Every write carries ``(client_id, seq)``. The table remembers, per client,
the last sequence number applied and the result it produced, so a retried
write answers the stored result instead of being applied twice.

Determinism: every replica must make the same decisions from the same log,
including after restarts and snapshot installs. So the table depends only on
what it persists (``kv.sessions``) and on the commands themselves: the LRU
order is the order of ``last_index`` (the log index of each client's last
applied write, which only grows), and expiry runs on *log time*, never on
the local clock. A retry that answers from the table changes nothing (it is
not a "use"), so it needs no write either.

Log time (the expiry rule). Each write carries its leader's wall clock
(``timestamp_ms``), but a leader's clock can jump (NTP step, a bad clock, a
new leader running ahead), and expiring by it would drop a session in the
middle of its client's retry: the retry then applies twice. So the table
keeps a *log clock*: the newest session's time. A command at log index ``i``
with leader time ``t`` reads the clock as::

    now = max(newest.time, min(t, newest.time + (i - newest.index) * step_ms))

It never moves backwards, and it advances by at most ``step_ms`` (1 ms by
default) per log index whatever the leader's clock says. A session expires
when ``now - session.time > ttl``; so after its last use a session survives
at least ``ttl / step_ms`` log entries (3.6 million with the defaults),
however far any clock jumps, and with sane clocks and more than one entry per
``step_ms`` it expires after ``ttl`` of real time. With fewer entries the log
clock lags real time and sessions live longer (the ``max_sessions`` LRU bound
still holds). Sessions are stamped with ``now``, so the clock needs no record
of its own: it is recomputed from the table after a restart or a restore.
"""

from __future__ import annotations

import enum
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from nexus_raft.errors import CorruptionError

__all__ = ["Session", "SessionTable", "Verdict", "decode_session", "encode_session"]

_KEY = struct.Struct(">Q")
_VALUE = struct.Struct(">QQQ")


class Verdict(enum.Enum):
    """What to do with a write given its client's session."""

    NEW = "new"  # apply it
    DUPLICATE = "duplicate"  # answer the stored result, apply nothing
    STALE = "stale"  # older than the last one applied: its result is gone


@dataclass(slots=True)
class Session:
    """One client's last applied write."""

    client_id: int
    seq: int
    result: bytes
    last_index: int
    timestamp_ms: int


def session_key(client_id: int) -> bytes:
    """The ``kv.sessions`` key of ``client_id``."""
    return _KEY.pack(client_id)


def encode_session(s: Session) -> bytes:
    """The ``kv.sessions`` value of ``s``."""
    return _VALUE.pack(s.seq, s.last_index, s.timestamp_ms) + s.result


def decode_session(key: bytes, value: bytes) -> Session:
    """Inverse of :func:`session_key` + :func:`encode_session`."""
    if len(key) != _KEY.size or len(value) < _VALUE.size:
        raise CorruptionError("kv.sessions record is malformed")
    seq, last_index, ts = _VALUE.unpack_from(value)
    return Session(_KEY.unpack(key)[0], seq, value[_VALUE.size :], last_index, ts)


class SessionTable:
    """Bounded, deterministic table of client sessions (in memory, mirrored to a tree).

    Mutating methods return what changed so that the caller can put it in
    the same write batch as the data: ``(upserts, removed_client_ids)``.
    Invariant: iteration order of ``_sessions`` is ascending ``last_index``.
    """

    __slots__ = ("_max", "_sessions", "_step_ms", "_ttl_ms")

    def __init__(
        self, *, max_sessions: int = 10_000, ttl_ms: int = 3_600_000, step_ms: int = 1
    ) -> None:
        for name, value in (
            ("max_sessions", max_sessions),
            ("ttl_ms", ttl_ms),
            ("step_ms", step_ms),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be positive")
        self._max = max_sessions
        self._ttl_ms = ttl_ms
        self._step_ms = step_ms
        self._sessions: OrderedDict[int, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._sessions

    def get(self, client_id: int) -> Session | None:
        """The session of ``client_id``, if it is remembered."""
        return self._sessions.get(client_id)

    def clear(self) -> None:
        """Forget every session (in memory only)."""
        self._sessions.clear()

    def load(self, sessions: Iterable[Session]) -> None:
        """Replace the table with ``sessions`` (read back from the tree)."""
        self._sessions = OrderedDict(
            (s.client_id, s) for s in sorted(sessions, key=lambda s: s.last_index)
        )

    def check(self, client_id: int, seq: int) -> tuple[Verdict, bytes]:
        """The verdict for ``(client_id, seq)`` and, for DUPLICATE, the stored result."""
        s = self._sessions.get(client_id)
        if s is None or seq > s.seq:
            return Verdict.NEW, b""
        if seq == s.seq:
            return Verdict.DUPLICATE, s.result
        return Verdict.STALE, b""

    def log_time(self, index: int, timestamp_ms: int) -> int:
        """The log clock for a command at ``index`` stamped ``timestamp_ms`` by its leader.

        See the module docstring: never below the newest session's time, never
        more than ``step_ms`` per log index above it. With no session yet
        there is nothing to expire, and the leader's time is taken as is.
        """
        sessions = self._sessions
        if not sessions:
            return timestamp_ms
        newest = next(reversed(sessions.values()))
        ceiling = newest.timestamp_ms + max(0, index - newest.last_index) * self._step_ms
        return max(newest.timestamp_ms, min(timestamp_ms, ceiling))

    def expire(self, now_ms: int) -> list[int]:
        """Drop sessions idle for longer than the TTL as of ``now_ms`` (log time, :meth:`log_time`).

        Sweeps from the least recently used end and stops at the first live
        session: O(expired), and the same on every replica.
        """
        removed: list[int] = []
        horizon = now_ms - self._ttl_ms
        sessions = self._sessions
        while sessions:
            client_id, s = next(iter(sessions.items()))
            if s.timestamp_ms >= horizon:
                break
            del sessions[client_id]
            removed.append(client_id)
        return removed

    def record(
        self, client_id: int, seq: int, result: bytes, index: int, timestamp_ms: int
    ) -> tuple[Session, list[int]]:
        """Remember ``result`` as ``client_id``'s answer to ``seq``; evict beyond the bound.

        Returns the new session and the client ids evicted to make room.
        """
        s = Session(client_id, seq, result, index, timestamp_ms)
        sessions = self._sessions
        sessions.pop(client_id, None)
        sessions[client_id] = s
        evicted: list[int] = []
        while len(sessions) > self._max:
            victim, _ = sessions.popitem(last=False)
            evicted.append(victim)
        return s, evicted
