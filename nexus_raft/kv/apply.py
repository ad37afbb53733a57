"""One apply pass of the KV state machine: commands in, one write batch out.

:class:`ApplyPass` turns a run of committed commands into a single
:class:`~nexus_raft.storage.Batch` (data, events, leases, sessions, applied
index, revision, history bounds) plus the results and the watch events to
publish once the batch is durable. Writes go through a
:class:`~nexus_raft.kv.mvcc.WriteSet`: reads see the pass's own pending
writes, so command ``n`` observes commands ``< n`` of the same batch exactly
as if each had been written separately, and every command that changes
something takes the next main revision.

Two kinds of command share the log: the native KV commands
(:mod:`~nexus_raft.kv.commands`, first byte 0xC1) and the etcd API's
(:mod:`~nexus_raft.kv.etcd.command`, first byte 0xE7).

Nothing here raises for bad input: a malformed or over-limit command becomes
an error result, because one corrupt log entry must never stop the apply loop
(every replica would stop at the same entry).
"""

from __future__ import annotations

from typing import Protocol

from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.commands import (
    GROUP_MAGIC,
    KVOp,
    ParsedCommand,
    ResultCode,
    encode_group_result,
    encode_result,
    parse_command,
    split_group,
    validate_key,
)
from nexus_raft.kv.etcd.apply import ETCD_MAGIC, apply_etcd
from nexus_raft.kv.mvcc import WriteSet
from nexus_raft.kv.records import encode_u64, event_key, event_size
from nexus_raft.kv.sessions import SessionTable, Verdict, encode_session, session_key
from nexus_raft.kv.watch_hub import WatchEvent
from nexus_raft.storage import Batch, Tree

__all__ = ["ApplyPass", "ApplyTarget"]


class ApplyTarget(Protocol):
    """The parts of a :class:`~nexus_raft.kv.state_machine.KVStateMachine` a pass reads.

    ``_revision`` is the last applied main revision (a pass starts after
    it); ``_ev_*`` the retained history's size and floor; the trees are the
    state machine's; ``_sessions`` is its live session table, which a pass
    mutates as it goes (see :class:`ApplyPass`).
    """

    max_key_bytes: int
    max_value_bytes: int
    _revision: int
    _ev_count: int
    _ev_bytes: int
    _ev_floor: int
    _compacted: int
    _sessions: SessionTable
    _data: Tree
    _meta: Tree
    _events: Tree
    _sessions_tree: Tree
    _leases: Tree
    _lease_keys: Tree


class ApplyPass:
    """Collects the effects of consecutive commands; see the module docstring.

    Mutates the state machine's session table as it goes (later commands
    must see earlier ones' sessions); the caller reloads the table if the
    batch then fails to write. After :meth:`finish`, ``ev_count``,
    ``ev_bytes`` and ``ev_floor`` are the history's new bounds.
    """

    __slots__ = ("ev_bytes", "ev_count", "ev_floor", "session_puts", "sm", "ws")

    def __init__(self, sm: ApplyTarget) -> None:
        self.sm = sm
        self.ws = WriteSet(
            sm._data,
            sm._events,
            sm._leases,
            sm._lease_keys,
            sm._revision,
            floor=sm._ev_floor,
            compacted=sm._compacted,
        )
        self.session_puts: dict[int, bytes] = {}
        self.ev_count = sm._ev_count
        self.ev_bytes = sm._ev_bytes
        self.ev_floor = sm._ev_floor

    @property
    def batch(self) -> Batch:
        """The pass's write batch (plain operations are ``kv.data`` writes)."""
        return self.ws.batch

    @property
    def revision(self) -> int:
        """The main revision after the commands applied so far."""
        return self.ws.revision

    @property
    def events(self) -> list[WatchEvent]:
        """The changes made so far, in (main, sub) revision order."""
        return self.ws.events

    def apply(self, index: int, raw: bytes) -> bytes:
        """Apply the command at ``index``; its encoded result."""
        if not raw:
            return b""  # an empty payload is a no-op (the node normally skips these)
        if raw[0] == ETCD_MAGIC:
            return apply_etcd(self.ws, raw, self.sm.max_value_bytes)
        if raw[0] == GROUP_MAGIC:
            return self._apply_group(index, raw)
        return self._apply_one(index, raw)

    def _apply_group(self, index: int, raw: bytes) -> bytes:
        """A group (several client writes in one entry): each applied in turn, one result each."""
        try:
            commands = split_group(raw)
        except InvalidCommand as exc:
            return encode_result(ResultCode.INVALID, self.ws.revision, None, str(exc))
        results = []
        for command in commands:
            if command and command[0] == GROUP_MAGIC:
                results.append(
                    encode_result(
                        ResultCode.INVALID, self.ws.revision, None, "command groups do not nest"
                    )
                )
            elif command and command[0] == ETCD_MAGIC:
                results.append(apply_etcd(self.ws, command, self.sm.max_value_bytes))
            else:
                results.append(self._apply_one(index, command))
        return encode_group_result(results)

    def _apply_one(self, index: int, raw: bytes) -> bytes:
        """Apply one native KV command at ``index``; its encoded result."""
        if not raw:
            return encode_result(ResultCode.INVALID, self.ws.revision, None, "empty command")
        try:
            cmd = parse_command(raw)
        except InvalidCommand as exc:
            return encode_result(ResultCode.INVALID, self.ws.revision, None, str(exc))
        client_id, seq, ts = cmd[5], cmd[6], cmd[7]
        if not client_id and not ts:
            return self._execute(cmd)  # no session: the hot path of plain writes
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
                    ResultCode.INVALID, self.ws.revision, None, "seq must be >= 1 with a client id"
                )
            verdict, stored = sessions.check(client_id, seq)
            if verdict is Verdict.DUPLICATE:
                return stored
            if verdict is Verdict.STALE:
                last = sessions.get(client_id)
                return encode_result(
                    ResultCode.STALE,
                    self.ws.revision,
                    None,
                    f"seq {seq} is older than the session's last ({last.seq if last else 0})",
                )
        result = self._execute(cmd)
        if client_id:
            session, evicted = sessions.record(client_id, seq, result, index, ts)
            self.session_puts[client_id] = encode_session(session)
            for victim in evicted:
                self._drop_session(victim)
        return result

    def _drop_session(self, client_id: int) -> None:
        self.session_puts.pop(client_id, None)
        self.ws.batch.remove(session_key(client_id), tree=self.sm._sessions_tree)

    def _execute(self, cmd: ParsedCommand) -> bytes:
        sm, ws = self.sm, self.ws
        op, key, new, expected, expect_absent = cmd[0], cmd[1], cmd[2], cmd[3], cmd[4]
        reason = validate_key(key, sm.max_key_bytes)
        if reason is not None:
            return encode_result(ResultCode.INVALID, ws.revision, None, reason)
        limit = sm.max_value_bytes
        for what, blob in (("value", new), ("expected value", expected)):
            if blob is not None and len(blob) > limit:
                return encode_result(
                    ResultCode.TOO_LARGE,
                    ws.revision,
                    None,
                    f"{what} is {len(blob)} bytes, the limit is {limit}",
                )
        prev = ws.get(key)
        prev_value = None if prev is None else prev.value
        if op is KVOp.CAS:
            matches = prev is None if expect_absent else prev_value == expected
            if not matches:
                return encode_result(ResultCode.CAS_FAILED, ws.revision, prev_value)
        if new is None and prev is None:
            return encode_result(ResultCode.OK, ws.revision)  # deleting nothing changes nothing
        ws.begin()
        if new is None:
            assert prev is not None
            ws.delete(key, prev)
        else:
            # The native API has no leases: a native put detaches one (as an
            # etcd put without a lease does).
            ws.put(key, new, 0, prev)
        ws.end()
        return encode_result(ResultCode.OK, ws.revision, prev_value)

    def finish(self, applied: int) -> None:
        """Add sessions, applied index, revision, history bounds (and a compaction) to the batch."""
        sm, ws = self.sm, self.ws
        batch = ws.batch
        for client_id, value in self.session_puts.items():
            batch.insert(session_key(client_id), value, tree=sm._sessions_tree)
        batch.insert(b"applied", encode_u64(applied), tree=sm._meta)
        batch.insert(b"revision", encode_u64(ws.revision), tree=sm._meta)
        self.ev_count = sm._ev_count + len(ws.events)
        self.ev_bytes = sm._ev_bytes + ws.event_bytes
        if ws.compact_to:
            batch.insert(b"compact-rev", encode_u64(ws.compacted), tree=sm._meta)
            if ws.compact_to > self.ev_floor:
                self._compact(ws.compact_to)
        if ws.events or ws.compact_to:
            batch.insert(b"ev-count", encode_u64(self.ev_count), tree=sm._meta)
            batch.insert(b"ev-bytes", encode_u64(max(self.ev_bytes, 0)), tree=sm._meta)
            batch.insert(b"ev-floor", encode_u64(self.ev_floor), tree=sm._meta)

    def _compact(self, upto: int) -> None:
        """Drop every event below main revision ``upto`` (an etcd Compact), in this batch."""
        sm, ws = self.sm, self.ws
        batch = ws.batch
        stop = event_key(upto, 0)
        for key, value in sm._events.range(encode_u64(self.ev_floor), stop):
            batch.remove(key, tree=sm._events)
            self.ev_count -= 1
            self.ev_bytes -= event_size(value)
        # Events of this very pass below the new floor (a compaction after
        # writes in the same batch): written above, removed again here.
        for event, size in zip(ws.events, ws.event_sizes, strict=True):
            if event.revision >= upto:
                break
            batch.remove(event_key(event.revision, event.sub), tree=sm._events)
            self.ev_count -= 1
            self.ev_bytes -= size
        self.ev_floor = upto
