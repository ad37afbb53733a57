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
from typing import TYPE_CHECKING

from nexus_raft.consensus.kv_commands import KVCommand, KVOp, KVResult, ResultCode, validate_key
from nexus_raft.consensus.sessions import Verdict, encode_session, session_key
from nexus_raft.consensus.watch_hub import WatchEvent
from nexus_raft.errors import CorruptionError, InvalidCommand
from nexus_raft.storage import Batch

if TYPE_CHECKING:
    from nexus_raft.consensus.kv_state_machine import KVStateMachine

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
_EVENT = struct.Struct(">BI")


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


class ApplyPass:
    """Collects the effects of consecutive commands; see the module docstring.

    Mutates the state machine's session table as it goes (later commands
    must see earlier ones' sessions); the caller reloads the table if the
    batch then fails to write.
    """

    __slots__ = ("batch", "event_bytes", "events", "overlay", "revision", "session_puts", "sm")

    def __init__(self, sm: KVStateMachine) -> None:
        self.sm = sm
        self.batch = Batch()
        self.revision = sm._revision
        self.events: list[WatchEvent] = []
        self.event_bytes = 0
        # key -> (value or None if deleted, revision) for writes in this pass
        self.overlay: dict[bytes, tuple[bytes | None, int]] = {}
        self.session_puts: dict[int, bytes] = {}

    def _read(self, key: bytes) -> tuple[bytes | None, int]:
        hit = self.overlay.get(key)
        if hit is not None:
            return hit
        raw = self.sm._data.get(key)
        if raw is None:
            return None, 0
        return decode_record(raw)

    def _write(self, index: int, key: bytes, value: bytes | None) -> None:
        sm = self.sm
        if value is None:
            self.batch.remove(key, tree=sm._data)
        else:
            self.batch.insert(key, encode_record(value, index), tree=sm._data)
        event = encode_event(key, value)
        self.batch.insert(encode_u64(index), event, tree=sm._events)
        self.event_bytes += event_size(event)
        self.overlay[key] = (value, index)
        self.events.append(WatchEvent(index, key, value))
        self.revision = index

    def apply(self, index: int, raw: bytes) -> bytes:
        """Apply the command at ``index``; its encoded result."""
        if not raw:
            return b""  # an empty payload is a no-op (the node normally skips these)
        try:
            cmd = KVCommand.decode(raw)
        except InvalidCommand as exc:
            return KVResult.failure(ResultCode.INVALID, self.revision, str(exc)).encode()
        sm = self.sm
        sessions = sm._sessions
        if cmd.timestamp_ms:
            for client_id in sessions.expire(cmd.timestamp_ms):
                self._drop_session(client_id)
        if cmd.client_id:
            if cmd.seq == 0:
                return KVResult.failure(
                    ResultCode.INVALID, self.revision, "seq must be >= 1 with a client id"
                ).encode()
            verdict, stored = sessions.check(cmd.client_id, cmd.seq)
            if verdict is Verdict.DUPLICATE:
                return stored
            if verdict is Verdict.STALE:
                last = sessions.get(cmd.client_id)
                return KVResult.failure(
                    ResultCode.STALE,
                    self.revision,
                    f"seq {cmd.seq} is older than the session's last ({last.seq if last else 0})",
                ).encode()
        result = self._execute(index, cmd).encode()
        if cmd.client_id:
            session, evicted = sessions.record(
                cmd.client_id, cmd.seq, result, index, cmd.timestamp_ms
            )
            self.session_puts[cmd.client_id] = encode_session(session)
            for client_id in evicted:
                self._drop_session(client_id)
        return result

    def _drop_session(self, client_id: int) -> None:
        self.session_puts.pop(client_id, None)
        self.batch.remove(session_key(client_id), tree=self.sm._sessions_tree)

    def _execute(self, index: int, cmd: KVCommand) -> KVResult:
        sm = self.sm
        reason = validate_key(cmd.key, sm.max_key_bytes)
        if reason is not None:
            return KVResult.failure(ResultCode.INVALID, self.revision, reason)
        for what, blob in (("value", cmd.value), ("expected value", cmd.expected)):
            if blob is not None and len(blob) > sm.max_value_bytes:
                return KVResult.failure(
                    ResultCode.TOO_LARGE,
                    self.revision,
                    f"{what} is {len(blob)} bytes, the limit is {sm.max_value_bytes}",
                )
        prev, _ = self._read(cmd.key)
        if cmd.op is KVOp.CAS:
            matches = prev is None if cmd.expect_absent else prev == cmd.expected
            if not matches:
                return KVResult(False, self.revision, prev, "", ResultCode.CAS_FAILED)
        elif cmd.op is KVOp.DELETE:
            assert cmd.value is None
        new = cmd.value
        if new is None and prev is None:
            return KVResult(True, self.revision, None)  # deleting nothing changes nothing
        self._write(index, cmd.key, new)
        return KVResult(True, index, prev)

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
