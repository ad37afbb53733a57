"""Store: an embedded, ordered key-value database on LevelDB."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import deque
from itertools import starmap
from types import TracebackType
from typing import Any

from nexus_raft.errors import StorageError, StoreClosedError
from nexus_raft.storage._backend import BACKEND_ERRORS, backend_error
from nexus_raft.storage._catalog import load_or_init, purge_tree
from nexus_raft.storage._codec import check_bool, check_tree_name
from nexus_raft.storage._layout import (
    DEFAULT_TREE,
    ID_HWM_KEY,
    MAX_TREE_ID,
    NEXT_TREE_KEY,
    catalog_key,
    dropping_key,
    pack_u64,
    tree_prefix,
)
from nexus_raft.storage.backend import LEVELDB, StorageBackend
from nexus_raft.storage.batch import Batch
from nexus_raft.storage.handle import TreeHandle
from nexus_raft.storage.snapshot import Snapshot
from nexus_raft.storage.tree import Tree

log = logging.getLogger(__name__)

# generate_id() persists a high-water mark this many ids ahead, so only one id
# in ID_BLOCK costs an fsync. A crash or reopen skips the rest of the block.
ID_BLOCK = 1000


# The prefix of tree id 0xffffffff, which is never handed out: no key lives
# there, so compacting it costs nothing beyond the memtable flush (see flush()).
_NO_KEYS = b"\xff\xff\xff\xff"

# Carried writes waiting for the next synced write are bounded by this many
# bytes; a carried write that would exceed it is written synced instead.
CARRY_MAX_BYTES = 4 << 20

class Store:
    """An embedded key-value database: named trees of ordered keys on LevelDB.

    Open with :meth:`open` (or :meth:`open_temporary`), preferably in a
    ``with`` block. The store's own ``set``/``get``/``delete``/``contains``
    act on the default tree; :meth:`tree` gives named, isolated trees.

    Durability: with ``sync=False`` (the default) a write survives a crash of
    the process but may be lost in a power failure until :meth:`flush` is
    called; with ``sync=True`` every write is fsync'd before it returns.
    A later synced write does not make earlier unsynced ones durable (LevelDB
    closes a rotated log file without an fsync), except for *carried* writes:
    see :meth:`apply_batch`.

    One process may have a store open once; a second open (here or in another
    process) raises :class:`~nexus_raft.errors.StoreLockedError`. All methods
    are thread-safe; do not call :meth:`close` while other threads still use it.
    """

    def __init__(self, db: Any, path: str, *, sync: bool, temporary: bool) -> None:
        """Use :meth:`open` or :meth:`open_temporary` instead."""
        self._db = db
        self._path = path
        self._sync = sync
        self._temporary = temporary
        # One re-entrant lock serialises every write (LevelDB serialises writes
        # anyway): that makes read-modify-write atomic and watch events ordered.
        self._lock = threading.RLock()
        self._closed = False
        # Carried writes not yet inside a synced write: full key -> latest value
        # (None: deleted). The same dict object for the store's life (trees
        # hold it); emptied by every synced write, flush() and compact().
        self._carried: dict[bytes, bytes | None] = {}
        self._carried_bytes = 0
        state = load_or_init(db, path)
        self._next_tree_id = state.next_tree_id
        # Invariant: ids below _id_limit are reserved on disk; _next_id <= _id_limit.
        self._next_id = state.id_high_water
        self._id_limit = state.id_high_water
        self._trees: dict[str, Tree] = {
            name: self._make_tree(name, tree_id) for name, tree_id in state.trees.items()
        }
        self._default = self._trees[DEFAULT_TREE]

    # --- lifecycle ----------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, sync: bool = False,
             create: bool = True, backend: StorageBackend | None = None) -> Store:
        """Open (by default creating) the store in directory ``path``.

        ``sync=True`` fsyncs every write before returning. ``create=False``
        raises :class:`~nexus_raft.errors.StorageError` if there is no store.
        ``backend`` chooses where the bytes live (default: LevelDB; see
        :mod:`nexus_raft.storage.backend`; simulations pass a
        :class:`~nexus_raft.storage.simulated.SimulatedDisk`).
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be str or os.PathLike, not {type(path).__name__}")
        check_bool(sync, "sync")
        check_bool(create, "create")
        if backend is None:
            backend = LEVELDB
        elif not isinstance(backend, StorageBackend):
            raise TypeError(f"backend must be a StorageBackend, not {type(backend).__name__}")
        return cls._open(os.fspath(path), sync=sync, create=create, temporary=False,
                         backend=backend)

    @classmethod
    def open_temporary(cls, *, sync: bool = False) -> Store:
        """Open a new store in a fresh temporary directory, removed on close."""
        check_bool(sync, "sync")
        path = tempfile.mkdtemp(prefix="nexus-store-")
        try:
            return cls._open(path, sync=sync, create=True, temporary=True, backend=LEVELDB)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    @classmethod
    def _open(cls, path: str, *, sync: bool, create: bool, temporary: bool,
              backend: StorageBackend) -> Store:
        # Checked first: LevelDB itself would leave LOCK and LOG files behind
        # in a directory that holds no database.
        if not create and not backend.exists(path):
            raise StorageError(f"no store at {path}")
        db = backend.open(path, create=create)
        try:
            store = cls(db, path, sync=sync, temporary=temporary)
        except BaseException as exc:
            db.close()
            if isinstance(exc, BACKEND_ERRORS):
                raise backend_error(exc, path) from exc
            raise
        log.debug("opened store %s (sync=%s)", path, sync)
        return store

    def close(self) -> None:
        """Close the store; idempotent. A temporary store's directory is removed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._carried.clear()
            error = StoreClosedError(f"store is closed ({self._path})")
            for tree in self._trees.values():
                tree._detach(error)
            try:
                self._db.close()
            except BACKEND_ERRORS as exc:
                raise backend_error(exc, self._path) from exc
            finally:
                if self._temporary:
                    shutil.rmtree(self._path, ignore_errors=True)
        log.debug("closed store %s", self._path)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def path(self) -> str:
        """The store's directory."""
        return self._path

    @property
    def sync(self) -> bool:
        """Whether every write is fsync'd before it returns."""
        return self._sync

    def __enter__(self) -> Store:
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
        return f"<Store {self._path!r} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store is closed ({self._path})")

    # --- the default tree -----------------------------------------------------------

    def set(self, key: bytes | str, value: bytes | bytearray | memoryview) -> None:
        """Store ``value`` under ``key`` in the default tree."""
        self._default.set(key, value)

    def get(self, key: bytes | str) -> bytes | None:
        """The default tree's value for ``key``, or None."""
        return self._default.get(key)

    def delete(self, key: bytes | str) -> None:
        """Remove ``key`` from the default tree (nothing happens if absent)."""
        self._default.delete(key)

    def contains(self, key: bytes | str) -> bool:
        """Whether the default tree holds ``key``."""
        return self._default.get(key) is not None

    def __contains__(self, key: object) -> bool:
        return key in self._default

    # --- trees ------------------------------------------------------------------------

    def tree(self, name: str = DEFAULT_TREE) -> Tree:
        """The tree called ``name``, created (durably) on first use."""
        tree = self._trees.get(name) if type(name) is str else None
        if tree is not None and not self._closed:
            return tree
        check_tree_name(name)
        with self._lock:
            self._check_open()
            tree = self._trees.get(name)
            if tree is None:
                tree = self._create_tree(name)
            return tree

    def tree_names(self) -> list[str]:
        """Names of all trees, the default tree included, sorted."""
        with self._lock:
            self._check_open()
            return sorted(self._trees)

    def drop_tree(self, name: str) -> bool:
        """Delete tree ``name`` and all its keys; False if there is no such tree.

        Other trees are untouched. Handles to the dropped tree raise
        StorageError from then on and its subscribers are closed. The default
        tree cannot be dropped.
        """
        check_tree_name(name)
        with self._lock:
            self._check_open()
            if name == DEFAULT_TREE:
                raise StorageError("the default tree cannot be dropped")
            tree = self._trees.get(name)
            if tree is None:
                return False
            try:
                # Catalog removal and the purge marker land together, so after a
                # crash the next open either still has the tree or finishes the purge.
                with self._db.write_batch(sync=True) as wb:
                    self._put_carried(wb)
                    wb.delete(catalog_key(name))
                    wb.put(dropping_key(tree.tree_id), b"")
                self._synced()
                del self._trees[name]
                tree._detach(StorageError(f"tree {name!r} was dropped"))
                purge_tree(self._db, tree.tree_id)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc, self._path) from exc
        return True

    def _create_tree(self, name: str) -> Tree:
        """Allocate the next tree id and record it durably; caller holds the lock."""
        tree_id = self._next_tree_id
        if tree_id > MAX_TREE_ID:
            raise StorageError("no tree ids left in this store")
        try:
            with self._db.write_batch(sync=True) as wb:
                self._put_carried(wb)
                wb.put(catalog_key(name), tree_prefix(tree_id))
                wb.put(NEXT_TREE_KEY, tree_prefix(tree_id + 1))
            self._synced()
        except BACKEND_ERRORS as exc:
            raise backend_error(exc, self._path) from exc
        self._next_tree_id = tree_id + 1
        tree = self._trees[name] = self._make_tree(name, tree_id)
        return tree

    def _make_tree(self, name: str, tree_id: int) -> Tree:
        return Tree(self, name, tree_id, tree_prefix(tree_id), self._db, self._lock, self._sync)

    # --- batches ----------------------------------------------------------------------

    def apply_batch(self, batch: Batch, *, sync: bool | None = None, carry: bool = False) -> None:
        """Apply ``batch`` atomically; operations without ``tree=`` go to the default tree.

        ``sync`` overrides the store's mode for this one write: ``True`` makes
        the batch durable (fsync'd) before this returns, also on a store
        opened with ``sync=False``. (A later synced write is not enough to
        make an unsynced one durable: when LevelDB rotates its log, it closes
        the old log file without an fsync.)

        ``carry=True`` (for an unsynced write) makes the write *carried*: it
        is applied now, unsynced, and written again inside the next synced
        write of this store, so a power cut keeps it whenever it keeps any
        later synced write (also across LevelDB's log rotation), at the cost
        of writing its bytes twice instead of an fsync. What a power cut
        loses of carried writes is therefore always the newest ones, never
        one before a write it keeps: a state machine that carries its
        applies comes back as of some applied index, without holes. Later
        unsynced writes to a carried key are carried too (the next synced
        write must not put an older value back). Carried writes wait in
        memory: once more than ``CARRY_MAX_BYTES`` wait, the next carried
        write is written synced (with them) instead.
        """
        if sync is not None:
            check_bool(sync, "sync")
        check_bool(carry, "carry")
        self._apply_batch(batch, self._default, sync, carry)

    def _apply_batch(self, batch: Batch, target: Tree, sync: bool | None = None,
                     carry: bool = False) -> None:
        if not isinstance(batch, Batch):
            raise TypeError(f"batch must be a Batch, not {type(batch).__name__}")
        synced = self._sync if sync is None else sync
        ops = batch._ops
        with self._lock:
            self._check_open()
            if target._error is not None:
                raise type(target._error)(*target._error.args)
            trees = self._batch_targets(batch, target)
            if carry and not synced and self._carried_bytes > CARRY_MAX_BYTES:
                synced = True  # bounded memory: this one syncs everything carried
            try:
                if self._carried or (carry and not synced):
                    self._write_carrying(ops, target, trees, synced, carry)
                elif trees is None and not batch._has_removes:
                    # The common case, inserts into one tree: plyvel's prefixed
                    # write batch adds the prefix in C and starmap loops in C,
                    # which is what keeps batch puts near raw plyvel speed.
                    wb = target._pdb.write_batch(sync=synced)
                    deque(starmap(wb.put, ops), 0)
                    wb.write()
                else:
                    wb = self._db.write_batch(sync=synced)
                    put, delete = wb.put, wb.delete
                    for i, (key, value) in enumerate(ops):
                        full = (target if trees is None else trees[i])._prefix + key
                        if value is None:
                            delete(full)
                        else:
                            put(full, value)
                    wb.write()
            except BACKEND_ERRORS as exc:
                raise backend_error(exc, self._path) from exc
            if any(tree._subs for tree in self._trees.values()):
                for i, (key, value) in enumerate(ops):
                    tree = target if trees is None else trees[i]
                    if tree._subs:
                        tree._publish(key, value)

    def _write_carrying(self, ops: list[tuple[bytes, bytes | None]], target: Tree,
                        trees: list[Tree] | None, synced: bool, carry: bool) -> None:
        """Write ``ops`` while writes are carried (see :meth:`apply_batch`); holds the lock.

        Synced: the carried writes go first in the same batch, then ``ops``,
        and nothing is carried any more. Unsynced: ``ops`` are written and
        carried (``carry``), or only those to an already carried key are.
        """
        wb = self._db.write_batch(sync=synced)
        put, delete = wb.put, wb.delete
        if synced:
            self._put_carried(wb)
        full_ops = [
            ((target if trees is None else trees[i])._prefix + key, value)
            for i, (key, value) in enumerate(ops)
        ]
        for full, value in full_ops:
            if value is None:
                delete(full)
            else:
                put(full, value)
        wb.write()
        if synced:
            self._synced()
            return
        carried = self._carried
        size = 0
        for full, value in full_ops:
            if carry or full in carried:
                carried[full] = value
                size += len(full) + (len(value) if value is not None else 0)
        self._carried_bytes += size

    def _put_carried(self, wb: Any) -> None:
        """Add every carried write to the synced write batch ``wb`` (before its own ops)."""
        for full, value in self._carried.items():
            if value is None:
                wb.delete(full)
            else:
                wb.put(full, value)

    def _synced(self) -> None:
        """A synced write (or a flush) made everything so far durable: nothing is carried."""
        self._carried.clear()
        self._carried_bytes = 0

    def _write_one(self, tree: Tree, key: bytes, value: bytes | None,
                   carry: bool = False) -> None:
        """A tree's single-key write while writes are carried, or a carried one
        (caller holds the lock)."""
        self._check_open()
        if tree._error is not None:
            raise type(tree._error)(*tree._error.args)
        synced = tree._synced_writes
        if carry and not synced and self._carried_bytes > CARRY_MAX_BYTES:
            synced = True  # bounded memory, as in _apply_batch
        self._write_carrying([(key, value)], tree, None, synced, carry)

    def _batch_targets(self, batch: Batch, target: Tree) -> list[Tree] | None:
        """The live tree of each operation (None: all go to ``target``); holds the lock."""
        if not batch._targets:
            return None
        resolved: dict[int, Tree] = {}
        targets = batch._targets
        return [
            target if i not in targets else self._resolve(targets[i], resolved)
            for i in range(len(batch._ops))
        ]

    def _resolve(self, ref: str | TreeHandle, resolved: dict[int, Tree]) -> Tree:
        """The live tree an operation's ``tree=`` names (memoised per batch by id)."""
        tree = resolved.get(id(ref))
        if tree is not None:
            return tree
        if isinstance(ref, str):
            tree = self.tree(ref)
        else:
            if not isinstance(ref, Tree) or ref._store is not self:
                raise StorageError(f"{ref!r} belongs to another store")
            if ref._error is not None:
                raise type(ref._error)(*ref._error.args)
            tree = ref
        resolved[id(ref)] = tree
        return tree

    # --- durability, ids, snapshots --------------------------------------------------

    def flush(self) -> None:
        """Make everything written so far durable, also what was written with ``sync=False``.

        A synced write is not enough: it syncs LevelDB's current log file
        only, and writes made before the last log rotation sit in a log file
        that LevelDB closed without an fsync until their memtable reaches a
        table in the background. A range compaction first writes the memtable
        to a table and syncs it and the manifest, and waits for that;
        compacting a key range no tree can hold (tree id 0xffffffff, never
        handed out) does only that. Cost: writing one memtable (at most
        LevelDB's 4 MiB write buffer) and a few fsyncs, so call it at
        checkpoints (a restore, a log compaction), not per write.
        """
        with self._lock:
            self._check_open()
            try:
                self._db.compact_range(start=_NO_KEYS, stop=_NO_KEYS)
            except BACKEND_ERRORS as exc:
                raise backend_error(exc, self._path) from exc
            self._synced()

    def compact(self) -> None:
        """Compact the whole database: reclaims the space of deleted and
        overwritten keys (and of dropped trees) now rather than eventually.

        Slow on large stores; reads and writes keep working meanwhile.
        """
        self._check_open()
        try:
            self._db.compact_range()
        except BACKEND_ERRORS as exc:
            raise backend_error(exc, self._path) from exc

    def generate_id(self) -> int:
        """A unique int, strictly greater than every id returned before (also across reopen).

        Ids are reserved on disk in blocks of ``ID_BLOCK`` (one fsync per block),
        so ids skipped by a crash or reopen are never handed out.
        """
        with self._lock:
            self._check_open()
            if self._next_id >= self._id_limit:
                limit = self._next_id + ID_BLOCK
                try:
                    with self._db.write_batch(sync=True) as wb:
                        self._put_carried(wb)
                        wb.put(ID_HWM_KEY, pack_u64(limit))
                    self._synced()
                except BACKEND_ERRORS as exc:
                    raise backend_error(exc, self._path) from exc
                self._id_limit = limit
            value = self._next_id
            self._next_id = value + 1
            return value

    def snapshot(self) -> Snapshot:
        """A consistent read-only view of every tree as of now; close it when done."""
        with self._lock:
            self._check_open()
            try:
                snap = self._db.snapshot()
            except BACKEND_ERRORS as exc:
                raise backend_error(exc, self._path) from exc
            catalog = {name: tree._prefix for name, tree in self._trees.items()}
            unallocated = tree_prefix(min(self._next_tree_id, MAX_TREE_ID + 1))
        return Snapshot(snap, catalog, unallocated)
