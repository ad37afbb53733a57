"""One apply pass of the KV state machine: commands in, one write batch out.

:class:`ApplyPass` turns a run of committed commands into a single
:class:`~nexus_raft.storage.Batch` (data, events, sessions, applied index,
revision) plus the results and the watch events to publish once the batch is
durable. Reads see the pass's own pending writes (an overlay), so command
``n`` observes commands ``< n`` of the same batch exactly as if each had been
written separately.

Nothing here raises for bad input: a malformed or over-limit command becomes
an error result, because one corrupt log entry must never stop the apply loop
(every replica would stop at the same entry).
"""

from __future__ import annotations

import struct
from typing import Protocol

from nexus_raft.errors import CorruptionError, InvalidCommand
from nexus_raft.kv.commands import (
    KVOp,
    ParsedCommand,
    ResultCode,
    encode_result,
    parse_command,
    validate_key,
)
from nexus_raft.kv.sessions import SessionTable, Verdict, encode_session, session_key
from nexus_raft.kv.watch_hub import WatchEvent
from nexus_raft.storage import Batch, Tree

__all__ = [
    "ApplyPass",
    "decode_event",
    "decode_record",
    "encode_event",
    "encode_record",
    "encode_u64",
    "event_size",
]

_U64 = struct.Struct(">Q")
_U64_PACK = _U64.pack
_EVENT = struct.Struct(">BI")
_EVENT_PACK = _EVENT.pack


def encode_u64(value: int) -> bytes:
    """Big-endian u64 (applied index, revision, event keys)."""
    return _U64.pack(value)


def decode_u64(raw: bytes) -> int:
    """Inverse of :func:`encode_u64`."""
    if len(raw) != 8:
        raise CorruptionError("kv.* u64 field has a bad size")
    value: int = _U64.unpack(raw)[0]
    return value


def encode_record(value: bytes, revision: int) -> bytes:
    """A ``kv.data`` value: the key's modification revision, then its value."""
    return _U64.pack(revision) + value


def decode_record(raw: bytes) -> tuple[bytes, int]:
    """Inverse of :func:`encode_record`: (value, revision)."""
    if len(raw) < 8:
        raise CorruptionError("kv.data record is truncated")
    return raw[8:], _U64.unpack_from(raw)[0]


def encode_event(key: bytes, value: bytes | None) -> bytes:
    """A ``kv.events`` value (its key is the revision)."""
    head = _EVENT.pack(0 if value is None else 1, len(key))
    return head + key + (value or b"")


def event_size(encoded: bytes) -> int:
    """What one stored event counts against the history's byte bound (key + value + keys)."""
    return len(encoded) + 8


def decode_event(revision_key: bytes, raw: bytes) -> WatchEvent:
    """Inverse of :func:`encode_event`."""
    if len(raw) < _EVENT.size:
        raise CorruptionError("kv.events record is truncated")
    has_value, klen = _EVENT.unpack_from(raw)
    key = raw[_EVENT.size : _EVENT.size + klen]
    value = raw[_EVENT.size + klen :] if has_value else None
    return WatchEvent(decode_u64(revision_key), key, value)


class ApplyTarget(Protocol):
    """The parts of a :class:`~nexus_raft.kv.state_machine.KVStateMachine` a pass reads.

    ``_revision`` is the last applied revision (a pass starts after it); the
    trees are the state machine's; ``_sessions`` is its live session table,
    which a pass mutates as it goes (see :class:`ApplyPass`).
    """

    max_key_bytes: int
    max_value_bytes: int
    _revision: int
    _ev_count: int
    _ev_bytes: int
    _sessions: SessionTable
    _data: Tree
    _meta: Tree
    _events: Tree
    _sessions_tree: Tree


class ApplyPass:
    """Collects the effects of consecutive commands; see the module docstring.

    Mutates the state machine's session table as it goes (later commands
    must see earlier ones' sessions); the caller reloads the table if the
    batch then fails to write.
    """

    __slots__ = ("batch", "event_bytes", "events", "overlay", "revision", "session_puts", "sm")

    def __init__(self, sm: ApplyTarget) -> None:
        self.sm = sm
        self.batch = Batch()
        self.revision = sm._revision
        self.events: list[WatchEvent] = []
        self.event_bytes = 0
        # key -> (value or None if deleted, revision) for writes in this pass
        self.overlay: dict[bytes, tuple[bytes | None, int]] = {}
        self.session_puts: dict[int, bytes] = {}

    def _write(self, index: int, key: bytes, value: bytes | None) -> None:
        sm = self.sm
        batch = self.batch
        if value is None:
            batch.remove(key)  # the batch is applied to kv.data: no tree= needed
            event = _EVENT_PACK(0, len(key)) + key
        else:
            batch.insert(key, _U64_PACK(index) + value)
            event = _EVENT_PACK(1, len(key)) + key + value
        batch.insert(_U64_PACK(index), event, tree=sm._events)
        self.event_bytes += len(event) + 8  # == event_size(event)
        self.overlay[key] = (value, index)
        self.events.append(WatchEvent(index, key, value))
        self.revision = index

    def apply(self, index: int, raw: bytes) -> bytes:
        """Apply the command at ``index``; its encoded result."""
        if not raw:
            return b""  # an empty payload is a no-op (the node normally skips these)
        try:
            cmd = parse_command(raw)
        except InvalidCommand as exc:
            return encode_result(ResultCode.INVALID, self.revision, None, str(exc))
        client_id, seq, ts = cmd[5], cmd[6], cmd[7]
        if not client_id and not ts:
            return self._execute(index, cmd)  # no session: the hot path of plain writes
        sessions = self.sm._sessions
        if ts:
            # Log time, not the leader's clock: a clock jump must not expire
            # a session while its client retries (see kv.sessions).
            ts = sessions.log_time(index, ts)
            for expired in sessions.expire(ts):
                self._drop_session(expired)
        if client_id:
            if seq == 0:
                return encode_result(
                    ResultCode.INVALID, self.revision, None, "seq must be >= 1 with a client id"
                )
            verdict, stored = sessions.check(client_id, seq)
            if verdict is Verdict.DUPLICATE:
                return stored
            if verdict is Verdict.STALE:
                last = sessions.get(client_id)
                return encode_result(
                    ResultCode.STALE,
                    self.revision,
                    None,
                    f"seq {seq} is older than the session's last ({last.seq if last else 0})",
                )
        result = self._execute(index, cmd)
        if client_id:
            session, evicted = sessions.record(client_id, seq, result, index, ts)
            self.session_puts[client_id] = encode_session(session)
            for victim in evicted:
                self._drop_session(victim)
        return result

    def _drop_session(self, client_id: int) -> None:
        self.session_puts.pop(client_id, None)
        self.batch.remove(session_key(client_id), tree=self.sm._sessions_tree)

    def _execute(self, index: int, cmd: ParsedCommand) -> bytes:
        sm = self.sm
        op, key, new, expected, expect_absent = cmd[0], cmd[1], cmd[2], cmd[3], cmd[4]
        reason = validate_key(key, sm.max_key_bytes)
        if reason is not None:
            return encode_result(ResultCode.INVALID, self.revision, None, reason)
        limit = sm.max_value_bytes
        for what, blob in (("value", new), ("expected value", expected)):
            if blob is not None and len(blob) > limit:
                return encode_result(
                    ResultCode.TOO_LARGE,
                    self.revision,
                    None,
                    f"{what} is {len(blob)} bytes, the limit is {limit}",
                )
        hit = self.overlay.get(key)
        if hit is not None:
            prev = hit[0]
        else:
            stored = sm._data.get(key)
            prev = None if stored is None else decode_record(stored)[0]
        if op is KVOp.CAS:
            matches = prev is None if expect_absent else prev == expected
            if not matches:
                return encode_result(ResultCode.CAS_FAILED, self.revision, prev)
        if new is None and prev is None:
            return encode_result(ResultCode.OK, self.revision)  # deleting nothing changes nothing
        self._write(index, key, new)
        return encode_result(ResultCode.OK, index, prev)

    def finish(self, applied: int) -> None:
        """Add the session upserts and the applied index / revision to the batch."""
        sm = self.sm
        for client_id, value in self.session_puts.items():
            self.batch.insert(session_key(client_id), value, tree=sm._sessions_tree)
        self.batch.insert(b"applied", encode_u64(applied), tree=sm._meta)
        self.batch.insert(b"revision", encode_u64(self.revision), tree=sm._meta)
        if self.events:
            count = sm._ev_count + len(self.events)
            self.batch.insert(b"ev-count", encode_u64(count), tree=sm._meta)
            size = sm._ev_bytes + self.event_bytes
            self.batch.insert(b"ev-bytes", encode_u64(size), tree=sm._meta)
