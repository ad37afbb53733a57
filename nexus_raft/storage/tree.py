"""Tree: one named, isolated key space of a Store."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from nexus_raft.errors import StorageError
from nexus_raft.storage._backend import (
    BACKEND_ERRORS,
    Detached,
    backend_error,
    guarded,
    reverse_tree_items,
)
from nexus_raft.storage._codec import (
    check_bool,
    encode_key,
    encode_optional_value,
    encode_value,
)
from nexus_raft.storage.batch import Batch
from nexus_raft.storage.handle import TreeHandle
from nexus_raft.storage.reads import Item, ReadMethods
from nexus_raft.storage.watch import Event, Subscriber


class BatchWriter(Protocol):
    """The owning :class:`~nexus_raft.storage.Store`, as a tree sees it."""

    _carried: dict[bytes, bytes | None]

    def _apply_batch(self, batch: Batch, target: Tree, sync: bool | None = None,
                     carry: bool = False) -> None: ...

    def _write_one(self, tree: Tree, key: bytes, value: bytes | None,
                   carry: bool = False) -> None: ...


Updater = Callable[["bytes | None"], "bytes | bytearray | memoryview | None"]


class Tree(ReadMethods, TreeHandle):
    """A named key space of a :class:`~nexus_raft.storage.Store`, ordered by key.

    Get one with ``store.tree(name)`` (the same object every time). Keys are
    ``bytes`` or ``str`` (UTF-8), values ``bytes``/``bytearray``/``memoryview``
    and are returned as ``bytes``. Every write takes the store's write lock, so
    :meth:`compare_and_swap` and :meth:`fetch_and_update` are atomic against
    all other writes made through the store, and watchers see writes in order.
    Reads take no lock. After the tree is dropped every method raises
    :class:`~nexus_raft.errors.StorageError`; after the store is closed,
    :class:`~nexus_raft.errors.StoreClosedError`.
    """

    __slots__ = (
        "_carried",
        "_delete",
        "_error",
        "_id",
        "_lock",
        "_name",
        "_pdb",
        "_prefix",
        "_put",
        "_reader",
        "_store",
        "_subs",
        "_synced_writes",
    )

    def __init__(self, store: BatchWriter, name: str, tree_id: int, prefix: bytes, db: Any,
                 lock: threading.RLock, sync: bool) -> None:
        self._store = store
        self._name = name
        self._id = tree_id
        self._prefix = prefix
        self._reader: Any = db
        # plyvel's prefixed view strips the prefix inside C while iterating, which
        # is faster than slicing in Python; point reads/writes concatenate instead
        # because that measured faster than going through the view.
        self._pdb: Any = db.prefixed_db(prefix)
        self._put: Callable[[bytes, bytes], None]
        self._delete: Callable[[bytes], None]
        self._synced_writes = sync
        # The store's carried writes (see Store.apply_batch): while any wait,
        # single-key writes go through the store, which keeps them in order.
        self._carried = store._carried
        if sync:
            self._put = functools.partial(db.put, sync=True)
            self._delete = functools.partial(db.delete, sync=True)
        else:
            self._put = db.put
            self._delete = db.delete
        self._lock = lock
        # Copy-on-write list: replaced (never mutated) under the lock, so the
        # publisher can iterate it without copying.
        self._subs: list[Subscriber] = []
        self._error: StorageError | None = None

    @property
    def name(self) -> str:
        """The tree's name."""
        return self._name

    @property
    def tree_id(self) -> int:
        """The tree's catalog id (its 4-byte big-endian key prefix)."""
        return self._id

    def __repr__(self) -> str:
        return f"<Tree {self._name!r} id={self._id}>"

    # --- reads ------------------------------------------------------------------

    def _iterator(self, start: bytes | None, stop: bytes | None, prefix: bytes | None,
                  reverse: bool) -> Iterator[Item]:
        if reverse:
            return reverse_tree_items(self._reader, self._prefix, start, stop, prefix)
        if prefix is not None:
            it = self._pdb.iterator(prefix=prefix)
        else:
            it = self._pdb.iterator(start=start, stop=stop)
        return guarded(it)

    # --- writes -----------------------------------------------------------------

    def set(self, key: bytes | str, value: bytes | bytearray | memoryview, *,
            carry: bool = False) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        ``carry=True``: a carried write, as in :meth:`Store.apply_batch
        <nexus_raft.storage.store.Store.apply_batch>` (for state applied from
        the Raft log beside the state machine's).
        """
        if type(key) is not bytes:
            key = encode_key(key, "key")
        if type(value) is not bytes:
            value = encode_value(value, "value")
        if carry is not False:
            check_bool(carry, "carry")
        with self._lock:
            try:
                if self._carried or carry:
                    self._store._write_one(self, key, value, carry)
                else:
                    self._put(self._prefix + key, value)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc) from exc
            if self._subs:
                self._publish(key, value)

    def delete(self, key: bytes | str, *, carry: bool = False) -> None:
        """Remove ``key`` (nothing happens if it is absent); ``carry`` as in :meth:`set`."""
        if type(key) is not bytes:
            key = encode_key(key, "key")
        if carry is not False:
            check_bool(carry, "carry")
        with self._lock:
            try:
                if self._carried or carry:
                    self._store._write_one(self, key, None, carry)
                else:
                    self._delete(self._prefix + key)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc) from exc
            if self._subs:
                self._publish(key, None)

    def set_json(self, key: bytes | str, obj: object) -> None:
        """Store ``obj`` encoded as JSON (orjson); TypeError if it is not serialisable."""
        try:
            raw = orjson.dumps(obj)
        except TypeError as exc:
            raise TypeError(f"obj is not JSON serialisable: {exc}") from exc
        self.set(key, raw)

    def compare_and_swap(
        self,
        key: bytes | str,
        expected: bytes | bytearray | memoryview | None,
        new: bytes | bytearray | memoryview | None,
    ) -> bool:
        """Set ``key`` to ``new`` only if its current value equals ``expected``.

        ``expected=None`` means the key must be absent; ``new=None`` deletes it.
        Returns whether the swap happened.
        """
        if type(key) is not bytes:
            key = encode_key(key, "key")
        expected = encode_optional_value(expected, "expected")
        new = encode_optional_value(new, "new")
        full = self._prefix + key
        with self._lock:
            try:
                current = self._reader.get(full)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc) from exc
            if current != expected:
                return False
            self._write_locked(key, full, current, new)
        return True

    def fetch_and_update(self, key: bytes | str, fn: Updater) -> bytes | None:
        """Atomically replace the value with ``fn(old)``; return ``old``.

        ``fn`` gets the current value (or None) and returns the new one (None
        deletes). It runs exactly once, holding the store's write lock, so keep
        it short; if it raises, nothing is written.
        """
        return self._update(key, fn)[0]

    def update_and_fetch(self, key: bytes | str, fn: Updater) -> bytes | None:
        """Like :meth:`fetch_and_update` but returns the new value."""
        return self._update(key, fn)[1]

    def _update(self, key: bytes | str, fn: Updater) -> tuple[bytes | None, bytes | None]:
        if type(key) is not bytes:
            key = encode_key(key, "key")
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        full = self._prefix + key
        with self._lock:
            try:
                old = self._reader.get(full)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc) from exc
            new = encode_optional_value(fn(old), "the value returned by fn")
            self._write_locked(key, full, old, new)
        return old, new

    def _write_locked(self, key: bytes, full: bytes, old: bytes | None,
                      new: bytes | None) -> None:
        """Write ``new`` (None: delete) over ``old``; caller holds the lock."""
        if new is None and old is None:
            return
        try:
            if self._carried:
                self._store._write_one(self, key, new)
            elif new is None:
                self._delete(full)
            else:
                self._put(full, new)
        except BACKEND_ERRORS as exc:
            raise backend_error(exc) from exc
        if self._subs:
            self._publish(key, new)

    def apply_batch(self, batch: Batch, *, sync: bool | None = None, carry: bool = False) -> None:
        """Apply ``batch`` atomically; operations without ``tree=`` go to this tree.

        ``sync`` and ``carry`` as in :meth:`Store.apply_batch
        <nexus_raft.storage.store.Store.apply_batch>`.
        """
        if sync is not None:
            check_bool(sync, "sync")
        check_bool(carry, "carry")
        self._store._apply_batch(batch, self, sync, carry)

    # --- watch ------------------------------------------------------------------

    def watch_prefix(self, prefix: bytes | str = b"") -> Subscriber:
        """Subscribe to writes to keys starting with ``prefix`` made through this store.

        Only writes after this call are reported, in write order, batches
        included. Close the subscriber when done.
        """
        if type(prefix) is not bytes:
            prefix = encode_key(prefix, "prefix")
        with self._lock:
            if self._error is not None:
                raise type(self._error)(*self._error.args)
            sub = Subscriber(prefix, self._unsubscribe)
            self._subs = [*self._subs, sub]
        return sub

    def _unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def _publish(self, key: bytes, value: bytes | None) -> None:
        """Queue an event for matching subscribers; caller holds the write lock."""
        event = Event(key, value)
        for sub in self._subs:
            if key.startswith(sub.prefix):
                sub._push(event)

    # --- lifecycle (called by Store) --------------------------------------------

    def _detach(self, error: StorageError) -> None:
        """Make every later call raise ``error`` and end all subscriptions."""
        dead = Detached(error)
        self._error = error
        self._reader = self._pdb = dead
        self._put = dead.put
        self._delete = dead.delete
        subs, self._subs = self._subs, []
        for sub in subs:
            sub._shutdown()
