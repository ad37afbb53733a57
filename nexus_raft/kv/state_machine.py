"""KVStateMachine: the replicated key-value store, persisted on the node's Store.

Trees: ``kv.data`` (key -> value and MVCC metadata), ``kv.meta`` (applied
index, revision, format, event-history bookkeeping), ``kv.sessions`` (client
sessions, see :mod:`~nexus_raft.kv.sessions`), ``kv.events`` ((main, sub)
revision -> change, the bounded history watches replay and past reads
undo), ``kv.leases`` and ``kv.lease_keys`` (etcd leases and their keys).
Record layouts: :mod:`~nexus_raft.kv.records`; a store written before them
is migrated on open (:mod:`~nexus_raft.kv.migrate`).

Exactly-once: every apply writes the data, the events, the sessions and the
applied index in ONE write batch, so after a crash the applied index says
precisely which commands are in the store; re-applying an index at or below
it is a no-op. Applies are unsynced but *carried* (``Store.apply_batch``):
each rides again in the node's next synced Raft write, so a power cut
loses only the newest applies, never one before an apply it keeps (LevelDB
closes a rotated log file unsynced); the node re-applies them from its log.
Revisions count write transactions: every command that changes something
takes the next main revision (etcd's rule), so a revision is not a log
index.

Locking: one lock serialises applies, snapshots' start, restores and watch
registration, and live events are published under it, so a watch sees
history and live events without a gap or a duplicate. Point reads and scans
do not take it (LevelDB reads are thread-safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from nexus_raft.consensus.state_machine import ChunkedSnapshot
from nexus_raft.errors import (
    Compacted,
    RaftUsageError,
    Unavailable,
)
from nexus_raft.kv.apply import ApplyPass
from nexus_raft.kv.commands import MAX_KEY_BYTES, as_key
from nexus_raft.kv.grouping import CommandGrouping
from nexus_raft.kv.migrate import migrate, needs_migration
from nexus_raft.kv.records import (
    FORMAT,
    KeyRecord,
    decode_record,
    decode_u64,
    encode_u64,
    event_key,
    event_size,
    split_event_key,
)
from nexus_raft.kv.replay import replayed_result
from nexus_raft.kv.sessions import SessionTable, decode_session
from nexus_raft.kv.snapshot import TREE_CODES, encode_stream, load_stream
from nexus_raft.kv.views import ReadView
from nexus_raft.kv.watch_hub import (
    WatchHub,
    WatchStream,
    replay_history,
)
from nexus_raft.storage import Batch, Store

__all__ = ["KVStateMachine"]

logger = logging.getLogger(__name__)

DATA_TREE = "kv.data"
META_TREE = "kv.meta"
SESSIONS_TREE = "kv.sessions"
EVENTS_TREE = "kv.events"
LEASES_TREE = "kv.leases"
LEASE_KEYS_TREE = "kv.lease_keys"

LeaseListener = Callable[[dict[int, int], list[int]], None]
"""Called after an apply with (leases granted: id -> TTL, lease ids revoked)."""

_RESTORING = b"restoring"


def _positive(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


class KVStateMachine(CommandGrouping):
    """Hierarchical ("/"-separated) key-value state machine with sessions and watches.

    Construct it, then ``open(store)`` (the node does), or pass ``store=`` to
    open at once. Limits: ``max_value_bytes`` per value, ``max_key_bytes``
    per key, ``max_sessions`` remembered clients (LRU), ``session_ttl_ms``
    of idleness (in command time) before a session expires, ``max_events``
    retained history events and ``max_event_bytes`` of their keys and values
    (trimmed in batches, an eighth of either bound at a time),
    ``watch_buffer`` live events buffered per watcher, ``snapshot_chunk_bytes``
    per snapshot chunk.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        max_value_bytes: int = 1 << 20,
        max_key_bytes: int = MAX_KEY_BYTES,
        max_sessions: int = 10_000,
        session_ttl_ms: int = 3_600_000,
        max_events: int = 100_000,
        max_event_bytes: int = 64 << 20,
        watch_buffer: int = 1024,
        snapshot_chunk_bytes: int = 1 << 20,
    ) -> None:
        self.max_value_bytes = _positive("max_value_bytes", max_value_bytes)
        self.max_key_bytes = _positive("max_key_bytes", max_key_bytes)
        self.max_events = _positive("max_events", max_events)
        self.snapshot_chunk_bytes = _positive("snapshot_chunk_bytes", snapshot_chunk_bytes)
        self.max_event_bytes = _positive("max_event_bytes", max_event_bytes)
        self._trim_slack = max(1, max_events // 8)
        self._trim_slack_bytes = max(1, max_event_bytes // 8)
        self._sessions = SessionTable(
            max_sessions=_positive("max_sessions", max_sessions),
            ttl_ms=_positive("session_ttl_ms", session_ttl_ms),
        )
        self._hub = WatchHub(buffer_limit=_positive("watch_buffer", watch_buffer))
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._applied = 0
        self._revision = 0
        self._ev_count = 0
        self._ev_bytes = 0
        self._ev_floor = 1  # every event with revision >= this is retained
        self._compacted = 0  # the revision of the last etcd Compact (0: none)
        self._lease_listeners: list[LeaseListener] = []
        self._restoring = False
        if store is not None:
            self.open(store)

    # --- lifecycle ------------------------------------------------------------------------

    def open(self, store: Store) -> int:
        """Bind to ``store`` and load the persisted state; returns the applied index."""
        if not isinstance(store, Store):
            raise TypeError(f"store must be a nexus_raft.storage.Store, not {type(store).__name__}")
        with self._lock:
            if self._store is not None:
                raise RaftUsageError("the state machine is already open")
            self._store = store
            self._bind_trees()
            if self._meta.get(_RESTORING) is not None:
                logger.warning("an interrupted snapshot restore left partial state: wiping it")
                self._wipe()
                self._meta.delete(_RESTORING)
                store.flush()
            self._upgrade()
            self._load()
            return self._applied

    def _upgrade(self) -> None:
        """Migrate format-1 state (before the etcd API) or stamp an empty store's format."""
        if needs_migration(self._meta):
            migrate(self._require_store(), self._data, self._meta, self._events)
        elif self._meta.get(b"format") is None:
            # Synced: a power cut must not keep later applies without it (the
            # next open would take their records for format 1 and migrate them).
            stamp = Batch()
            stamp.insert(b"format", encode_u64(FORMAT))
            self._meta.apply_batch(stamp, sync=True)

    def _bind_trees(self) -> None:
        store = self._require_store()
        self._data = store.tree(DATA_TREE)
        self._meta = store.tree(META_TREE)
        self._sessions_tree = store.tree(SESSIONS_TREE)
        self._events = store.tree(EVENTS_TREE)
        self._leases = store.tree(LEASES_TREE)
        self._lease_keys = store.tree(LEASE_KEYS_TREE)

    def _load(self) -> None:
        """(Re)read the in-memory mirror of the persisted state."""
        meta = self._meta

        def u64(key: bytes, default: int) -> int:
            raw = meta.get(key)
            return decode_u64(raw) if raw is not None else default

        self._applied = u64(b"applied", 0)
        self._revision = u64(b"revision", 0)
        self._ev_count = u64(b"ev-count", 0)
        self._ev_bytes = u64(b"ev-bytes", 0)
        self._ev_floor = u64(b"ev-floor", 1)
        self._compacted = u64(b"compact-rev", 0)
        self._sessions.load(decode_session(k, v) for k, v in self._sessions_tree.iter())

    def close(self) -> None:
        """End every watch and unbind from the store (the store stays open). Idempotent."""
        self._hub.close()
        with self._lock:
            self._store = None

    def client_services(self, node: Any) -> list[Callable[[Any], None]]:
        """The KV and etcd gRPC services for ``node`` (``consensus.state_machine.ServesClients``).

        A :class:`~nexus_raft.consensus.RaftNode` given this state machine serves
        ``nexus.kv.KV`` and etcd's v3 API on its listen port without knowing the KV package.
        """
        from nexus_raft.kv.etcd.api import EtcdAPI
        from nexus_raft.kv.service.kv import KVService

        return [KVService(node).register, EtcdAPI(node).register]

    def metrics_collectors(self) -> list[Any]:
        """The KV metrics (see ``consensus.state_machine.ProvidesMetrics``)."""
        from nexus_raft.kv.metrics import KVCollector

        return [KVCollector(self)]

    def stats(self) -> dict[str, int]:
        """Sizes for monitoring: revision, sessions, watchers, retained history."""
        return {
            "revision": self._revision,
            "sessions": len(self._sessions),
            "watchers": len(self._hub),
            "history_events": self._ev_count,
            "history_bytes": self._ev_bytes,
            "history_floor": self._ev_floor,
        }

    def _require_store(self) -> Store:
        store = self._store
        if store is None:
            raise RaftUsageError("the state machine is not open")
        return store

    # --- applying ---------------------------------------------------------------------------

    def apply(self, index: int, command: bytes) -> bytes:
        """Apply one committed command; returns its encoded :class:`KVResult`."""
        return self.apply_batch(((index, command),))[0]

    def apply_batch(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        """Apply committed commands (ascending index) in ONE write batch.

        Indexes at or below the applied index are skipped (exactly-once
        across restarts): they answer the stored session result when there
        is one, else an ``ALREADY_APPLIED`` failure.
        """
        with self._lock:
            self._require_store()
            if self._restoring:
                raise Unavailable("a snapshot restore is in progress")
            results: list[bytes] = []
            work = ApplyPass(self)
            applied = self._applied
            apply = work.apply
            for item in items:
                if type(item) is tuple and len(item) == 2:
                    index, command = item
                    if type(index) is not int or type(command) is not bytes:
                        index, command = _check_item(item)
                else:
                    index, command = _check_item(item)
                if index <= self._applied:
                    results.append(self._replayed(command, work.revision))
                    continue
                if index <= applied:
                    raise RaftUsageError(f"apply indexes must increase: {index} after {applied}")
                results.append(apply(index, command))
                applied = index
            if applied == self._applied:
                return results
            work.finish(applied)
            self._commit(work, applied)
            return results

    def note_applied(self, index: int) -> None:
        """Advance the applied index over an entry without a command (no-op, conf change)."""
        self.apply_batch(((index, b""),))

    def _replayed(self, command: bytes, revision: int) -> bytes:
        return replayed_result(self._sessions, command, revision)

    def _commit(self, work: ApplyPass, applied: int) -> None:
        self._require_store()
        try:
            # Operations without tree= in an ApplyPass batch are kv.data writes.
            self._data.apply_batch(work.batch, carry=True)
        except BaseException:
            # Memory (sessions) ran ahead of the failed write: re-read the store.
            self._load()
            raise
        self._applied = applied
        self._revision = work.revision
        self._ev_count, self._ev_bytes, self._ev_floor = work.ev_count, work.ev_bytes, work.ev_floor
        self._compacted = work.ws.compacted
        self._hub.publish(work.events)
        ws = work.ws
        if (ws.leases_granted or ws.leases_revoked) and self._lease_listeners:
            for listener in list(self._lease_listeners):
                try:
                    listener(dict(ws.leases_granted), list(ws.leases_revoked))
                except Exception:
                    logger.exception("a lease listener failed")
        if (
            self._ev_count > self.max_events + self._trim_slack
            or self._ev_bytes > self.max_event_bytes + self._trim_slack_bytes
        ):
            self._trim_events()

    def _trim_events(self) -> None:
        """Drop the oldest events until both bounds hold again (one batch, oldest first)."""
        count, size = self._ev_count, self._ev_bytes
        batch = Batch()
        last = 0
        # Start at the floor, not at the tree's first key: everything below it
        # was deleted by earlier trims, and seeking to the first key would
        # walk all of their deletion markers LevelDB has not compacted yet.
        for key, value in self._events.range(encode_u64(self._ev_floor), None):
            main = split_event_key(key)[0]
            # Never split a transaction: the floor is a whole main revision.
            if main != last and count <= self.max_events and size <= self.max_event_bytes:
                break
            batch.remove(key, tree=self._events)
            last = main
            count -= 1
            size -= event_size(value)
        floor = max(self._ev_floor, last + 1)
        size = max(size, 0)
        batch.insert(b"ev-count", encode_u64(count), tree=self._meta)
        batch.insert(b"ev-bytes", encode_u64(size), tree=self._meta)
        batch.insert(b"ev-floor", encode_u64(floor), tree=self._meta)
        self._require_store().apply_batch(batch, carry=True)
        self._ev_count, self._ev_bytes, self._ev_floor = count, size, floor

    # --- reads ---------------------------------------------------------------------------------

    def _check_readable(self) -> None:
        self._require_store()
        if self._restoring:
            raise Unavailable("a snapshot restore is in progress")

    def applied_index(self) -> int:
        """The highest log index applied."""
        return self._applied

    def revision(self) -> int:
        """The revision of the latest change (the log index of the command that made it)."""
        return self._revision

    def history_floor(self) -> int:
        """The oldest revision a watch can still start from."""
        return self._ev_floor

    def compacted_revision(self) -> int:
        """The revision of the last etcd Compact (0: none); reads before it are refused."""
        return self._compacted

    def get(self, key: bytes | str) -> tuple[bytes | None, int]:
        """(value, modification revision) of ``key``; ``(None, 0)`` when absent."""
        key = as_key(key)
        self._check_readable()
        raw = self._data.get(key)
        if raw is None:
            return None, 0
        rec = decode_record(raw)
        return rec.value, rec.mod

    def get_record(self, key: bytes | str) -> KeyRecord | None:
        """``key``'s value and MVCC metadata (None when absent)."""
        key = as_key(key)
        self._check_readable()
        raw = self._data.get(key)
        return None if raw is None else decode_record(raw)

    def read_view(self) -> ReadView:
        """A consistent view for etcd reads (current or past revisions); close it after use."""
        with self._lock:
            self._check_readable()
            view = self._require_store().snapshot()
        return ReadView(view, DATA_TREE, META_TREE, EVENTS_TREE, LEASES_TREE, LEASE_KEYS_TREE)

    def add_lease_listener(self, listener: LeaseListener) -> None:
        """Call ``listener(granted, revoked)`` after every apply that grants or revokes leases."""
        self._lease_listeners.append(listener)

    def remove_lease_listener(self, listener: LeaseListener) -> None:
        """Stop calling ``listener``."""
        try:
            self._lease_listeners.remove(listener)
        except ValueError:
            pass

    def list_keys(self, prefix: bytes | str = b"", limit: int = 0) -> list[bytes]:
        """Keys starting with ``prefix`` in key order; ``limit`` 0 means all."""
        prefix = as_key(prefix, "prefix")
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self._check_readable()
        out: list[bytes] = []
        for key, _ in self._data.scan_prefix(prefix):
            out.append(key)
            if limit and len(out) >= limit:
                break
        return out

    def prefixes(self, prefix: bytes | str = b"") -> list[bytes]:
        """Distinct next path levels under ``prefix``, in key order.

        A key ``prefix + "a/b"`` contributes ``prefix + "a/"`` (a directory);
        ``prefix + "c"`` contributes itself (a leaf). Each directory costs
        one seek, not a scan of its keys.
        """
        prefix = as_key(prefix, "prefix")
        self._check_readable()
        data = self._data
        end = prefix_upper_bound(prefix) if prefix else None
        start: bytes | None = prefix or None
        out: list[bytes] = []
        while True:
            jumped = False
            for key, _ in data.range(start, end):
                cut = key.find(b"/", len(prefix))
                if cut < 0:
                    out.append(key)
                    continue
                level = key[: cut + 1]
                out.append(level)
                start = prefix_upper_bound(level)
                jumped = True
                break
            if not jumped or start is None:
                return out

    # --- watches ---------------------------------------------------------------------------------

    def watch(self, prefix: bytes | str = b"", start_revision: int = 0) -> WatchStream:
        """Events under ``prefix``: history from ``start_revision`` (0: only new ones), then live.

        Raises :class:`Compacted` when ``start_revision`` is older than the
        retained history (:meth:`history_floor`).
        """
        prefix = as_key(prefix, "prefix")
        if not isinstance(start_revision, int) or isinstance(start_revision, bool):
            raise TypeError(f"start_revision must be an int, not {type(start_revision).__name__}")
        if start_revision < 0:
            raise ValueError("start_revision must be >= 0")
        return self.watch_range(prefix, True, start_revision)

    def watch_range(
        self, start: bytes, end: bytes | bool | None, start_revision: int = 0
    ) -> WatchStream:
        """Events for keys in ``[start, end)`` (``end`` None: no bound; True: the prefix ``start``).

        As :meth:`watch` otherwise (history from ``start_revision``, then live).
        """
        if start_revision < 0:
            raise ValueError("start_revision must be >= 0")
        with self._lock:
            self._check_readable()
            first = start_revision if start_revision else self._revision + 1
            stream = self._hub.subscribe(start, first, end)
            stream.set_resume(self._resume)
            try:
                if first <= self._revision:
                    self._resume(stream)
            except BaseException:
                stream.close()
                raise
            return stream

    def _resume(self, stream: WatchStream) -> None:
        """Point ``stream`` at history from its next revision (under the lock: no gap)."""
        with self._lock:
            store = self._require_store()
            wanted, sub = stream.next_position
            if wanted < self._ev_floor:
                raise Compacted(
                    f"revision {wanted} is compacted; the oldest retained is {self._ev_floor}",
                    revision=self._ev_floor,
                )
            view = store.snapshot()
            events = view.tree(EVENTS_TREE).range(event_key(wanted, sub), None)
            matches = stream.matches

            stream.set_replay(replay_history(events, matches), view.close)

    # --- snapshots -------------------------------------------------------------------------------

    def snapshot(self) -> ChunkedSnapshot:
        """Stream the kv.* trees from a consistent store view, chunk by chunk."""
        with self._lock:
            store = self._require_store()
            if self._restoring:
                raise Unavailable("a snapshot restore is in progress")
            view = store.snapshot()
        raw = view.tree(META_TREE).get(b"applied")
        index = decode_u64(raw) if raw is not None else 0
        trees = [(code, view.tree(name).iter()) for name, code in TREE_CODES.items()]
        return ChunkedSnapshot(
            index, encode_stream(index, trees, self.snapshot_chunk_bytes), view.close
        )

    def restore(self, index: int, chunks: Iterable[bytes]) -> None:
        """Replace the whole state with a snapshot stream's; applied index becomes ``index``.

        Streaming: records are written in ~4 MiB batches as they arrive. A
        ``restoring`` marker makes a crash mid-way safe: the next ``open()``
        wipes the partial state and reports applied index 0. A restore that
        raises leaves nothing readable (Unavailable) until one succeeds.
        """
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"index must be an int, not {type(index).__name__}")
        if isinstance(chunks, (bytes, bytearray, memoryview)):
            chunks = (bytes(chunks),)
        with self._lock:
            store = self._require_store()
            self._restoring = True
            try:
                self._meta.set(_RESTORING, b"")
                store.flush()
                self._wipe()
                self._load_stream(index, chunks)
                self._meta.set(b"applied", encode_u64(index))
                # A stream from a member of the old format carries format-1 records.
                self._upgrade()
                self._meta.delete(_RESTORING)
                store.flush()
            except BaseException:
                # Never leave a half-loaded or emptied state readable: keep the
                # marker (open() wipes, applied 0) and refuse reads meanwhile.
                logger.exception("KV snapshot restore at index %d failed", index)
                try:
                    self._wipe()
                    self._load()
                except Exception:
                    logger.exception("could not clean up after a failed restore")
                raise
            self._restoring = False
            self._load()
            self._hub.mark_all_behind()
            logger.info("restored KV snapshot at index %d (revision %d)", index, self._revision)

    def _wipe(self) -> None:
        """Empty every kv.* tree except the restore marker."""
        store = self._require_store()
        for name in (DATA_TREE, SESSIONS_TREE, EVENTS_TREE, LEASES_TREE, LEASE_KEYS_TREE):
            store.drop_tree(name)
        batch = Batch()
        for key, _ in self._meta.iter():
            if key != _RESTORING:
                batch.remove(key, tree=self._meta)
        store.apply_batch(batch)
        self._bind_trees()

    def _load_stream(self, index: int, chunks: Iterable[bytes]) -> None:
        trees = {
            TREE_CODES[DATA_TREE]: self._data,
            TREE_CODES[META_TREE]: self._meta,
            TREE_CODES[SESSIONS_TREE]: self._sessions_tree,
            TREE_CODES[EVENTS_TREE]: self._events,
            TREE_CODES[LEASES_TREE]: self._leases,
            TREE_CODES[LEASE_KEYS_TREE]: self._lease_keys,
        }
        load_stream(
            self._require_store(), trees, index, chunks, skip=(TREE_CODES[META_TREE], _RESTORING)
        )

    def __repr__(self) -> str:
        return (
            f"KVStateMachine(applied={self._applied}, revision={self._revision}, "
            f"sessions={len(self._sessions)}, watchers={len(self._hub)})"
        )


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def _check_item(item: tuple[int, bytes]) -> tuple[int, bytes]:
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError("items must be (index, command) tuples")
    index, command = item
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"index must be an int, not {type(index).__name__}")
    if not isinstance(command, (bytes, bytearray, memoryview)):
        raise TypeError(f"command must be bytes, not {type(command).__name__}")
    return index, bytes(command)
