"""Storage backends: where a :class:`~nexus_raft.storage.Store` keeps its bytes.

A backend opens, for a directory path, a database handle with the interface
of ``plyvel.DB`` that the store uses: ``get``, ``put``/``delete`` (with
``sync=``), ``write_batch(sync=)`` (also as a context manager),
``prefixed_db``, ``iterator`` (ranges, prefixes, cursors), ``snapshot``,
``compact_range`` and ``close``. The Store, Tree, Batch and Snapshot code
runs unchanged on top of any backend.

:data:`LEVELDB` (plyvel) is the production backend and the default of
``Store.open``. :class:`~nexus_raft.storage.simulated.SimulatedDisk` is an
in-memory backend for deterministic whole-node simulation: it keeps synced
and unsynced writes apart and can crash between any two writes. Nothing in
production selects it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from nexus_raft.errors import StorageError
from nexus_raft.storage._backend import open_db

__all__ = ["LEVELDB", "LevelDBBackend", "StorageBackend"]


@runtime_checkable
class StorageBackend(Protocol):
    """Opens database handles for ``Store.open`` (see the module docstring)."""

    def exists(self, path: str) -> bool:
        """Whether a database exists at ``path``."""
        ...

    def open(self, path: str, *, create: bool) -> Any:
        """A ``plyvel.DB``-like handle for ``path`` (created when ``create``).

        Raises :class:`~nexus_raft.errors.StorageError` subclasses
        (``StoreLockedError`` when the database is already open).
        """
        ...


class LevelDBBackend:
    """LevelDB through plyvel: the real backend."""

    def exists(self, path: str) -> bool:
        """LevelDB writes ``CURRENT`` (the manifest's name) in every database directory."""
        return os.path.isfile(os.path.join(path, "CURRENT"))

    def open(self, path: str, *, create: bool) -> Any:
        """Open (or create) the LevelDB database in directory ``path``."""
        if create:
            try:
                os.makedirs(path, exist_ok=True)  # LevelDB creates only the last level
            except OSError as exc:
                raise StorageError(f"cannot create store directory {path}: {exc}") from exc
        return open_db(path, create=create)

    def __repr__(self) -> str:
        return "LevelDBBackend()"


LEVELDB = LevelDBBackend()
"""The default backend of ``Store.open``."""
