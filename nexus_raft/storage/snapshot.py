"""Snapshot: a consistent, read-only view of every tree at one point in time."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from nexus_raft.errors import StoreClosedError
from nexus_raft.storage._backend import (
    BACKEND_ERRORS,
    backend_error,
    guarded,
    reverse_tree_items,
    tree_bounds,
)
from nexus_raft.storage._codec import check_tree_name
from nexus_raft.storage._layout import DEFAULT_TREE
from nexus_raft.storage.reads import Item, ReadMethods


class SnapshotTree(ReadMethods):
    """The read methods of :class:`~nexus_raft.storage.Tree`, frozen at snapshot time.

    ``get``, ``contains``, ``in``, ``get_json``, ``iter``, ``range``,
    ``scan_prefix``, ``keys``, ``first``, ``last`` and ``count`` behave exactly
    as on the live tree, but see only what was written before the snapshot.
    """

    __slots__ = ("_name", "_prefix", "_reader", "_snapshot")

    def __init__(self, snapshot: Snapshot, name: str, prefix: bytes) -> None:
        self._snapshot = snapshot
        self._name = name
        self._prefix = prefix
        self._reader: Any = snapshot._snap

    @property
    def name(self) -> str:
        """The tree's name."""
        return self._name

    def __repr__(self) -> str:
        return f"<SnapshotTree {self._name!r}>"

    def _iterator(self, start: bytes | None, stop: bytes | None, prefix: bytes | None,
                  reverse: bool) -> Iterator[Item]:
        # A LevelDB snapshot has no prefixed view, so bound the scan by the
        # tree prefix here and strip it from each key.
        # A released plyvel snapshot raises RuntimeError, mapped to StoreClosedError.
        reader = self._reader
        base = self._prefix
        try:
            if reverse:
                return reverse_tree_items(reader, base, start, stop, prefix)
            lo, hi = tree_bounds(base, start, stop, prefix)
            it = reader.iterator(start=lo, stop=hi)
        except BACKEND_ERRORS as exc:
            raise backend_error(exc) from exc
        return _strip(guarded(it), len(base))


def _strip(it: Iterator[Item], n: int) -> Iterator[Item]:
    for key, value in it:
        yield key[n:], value


class Snapshot:
    """A LevelDB snapshot of a whole store: consistent reads across all trees.

    Take one with ``store.snapshot()``; read a tree with ``snapshot.tree(name)``.
    Writes made after the snapshot are invisible to it. Close it (or use
    ``with``) to let LevelDB drop the old versions it pins. After close, or
    after the store closes, reads raise :class:`~nexus_raft.errors.StoreClosedError`.
    """

    __slots__ = ("__weakref__", "_catalog", "_closed", "_snap", "_unallocated")

    def __init__(self, snap: Any, catalog: dict[str, bytes], unallocated: bytes) -> None:
        self._snap: Any = snap
        self._catalog = catalog
        # Prefix of a tree id not yet allocated when the snapshot was taken: it
        # holds no keys in this snapshot, so a tree created later reads as empty.
        self._unallocated = unallocated
        self._closed = False

    def tree(self, name: str = DEFAULT_TREE) -> SnapshotTree:
        """The view of tree ``name`` (empty if it did not exist at snapshot time)."""
        check_tree_name(name)
        self._check_open()
        return SnapshotTree(self, name, self._catalog.get(name, self._unallocated))

    def tree_names(self) -> list[str]:
        """Names of the trees that existed when the snapshot was taken, sorted."""
        self._check_open()
        return sorted(self._catalog)

    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or after the store closed)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("snapshot is closed")

    def close(self) -> None:
        """Release the LevelDB snapshot; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._snap.close()
        except BACKEND_ERRORS:
            pass  # the store closed first, which already released it

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
