"""The one place where plyvel meets nexus_raft: opening a DB and mapping its errors.

plyvel reports problems three ways: ``plyvel.IOError`` (an ``OSError``; a held
LOCK file shows up here with "lock" in the message), ``plyvel.CorruptionError``
and other ``plyvel.Error`` subclasses, and plain ``RuntimeError`` when a closed
database, iterator or snapshot is used. :func:`backend_error` turns each into
the matching :class:`~nexus_raft.errors.StorageError`; callers write
``except BACKEND_ERRORS as exc: raise backend_error(exc) from exc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import plyvel

from nexus_raft.errors import (
    CorruptionError,
    StorageError,
    StoreClosedError,
    StoreLockedError,
)
from nexus_raft.storage._codec import prefix_upper_bound

T = TypeVar("T")
Item = tuple[bytes, bytes]

# The exceptions plyvel raises for backend conditions (not TypeErrors from misuse).
BACKEND_ERRORS: tuple[type[BaseException], ...] = (plyvel.Error, RuntimeError)


def _message(exc: BaseException) -> str:
    """plyvel puts the LevelDB status in ``args[0]`` as bytes; make it text."""
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace")
    return str(exc)


def backend_error(exc: BaseException, path: str | None = None) -> BaseException:
    """Map a plyvel/LevelDB exception to a nexus_raft storage error.

    A ``RuntimeError`` that is not about a closed handle is returned unchanged
    (it is not a backend condition we understand, so it must not be disguised).
    """
    text = _message(exc)
    where = f" ({path})" if path else ""
    if isinstance(exc, RuntimeError):
        if "closed" in text.lower():
            return StoreClosedError(f"used after close{where}: {text}")
        return exc
    if isinstance(exc, plyvel.IOError) and "lock" in text.lower():
        return StoreLockedError(f"store is already open{where}: {text}")
    if isinstance(exc, plyvel.CorruptionError):
        return CorruptionError(f"store data is corrupt{where}: {text}")
    if isinstance(exc, plyvel.Error) and "does not exist" in text:
        return StorageError(f"no store{where}: {text}")
    return StorageError(f"storage backend error{where}: {text}")


def open_db(path: str, *, create: bool) -> Any:
    """Open the LevelDB database at ``path`` (a ``plyvel.DB``), errors mapped.

    Blocks are written uncompressed: under a steady write load, snappy in
    LevelDB's flushes and compactions (and decompression on reads) was a
    third or more of a member's CPU (``perf``, bench/node.py at 256 in
    flight), and turning it off cut the CPU per write by about a fifth.
    Disk use grows by the data's compression ratio (etcd's bbolt does not
    compress either). Each block records its own compression, so data
    directories written with snappy still open and read as before.
    """
    try:
        return plyvel.DB(path, create_if_missing=create, compression=None)
    except BACKEND_ERRORS as exc:
        raise backend_error(exc, path) from exc


def guarded(iterator: Iterator[T]) -> Iterator[T]:
    """Yield from a plyvel iterator, mapping errors raised while advancing it.

    ``yield from`` keeps the per-item cost to one generator resume, which is
    what keeps scans close to raw plyvel speed.
    """
    try:
        yield from iterator
    except BACKEND_ERRORS as exc:
        raise backend_error(exc) from exc


def reverse_items(reader: Any, start: bytes | None, stop: bytes | None) -> Iterator[Item]:
    """(key, value) pairs of ``reader`` in [start, stop), newest key first.

    Walks a cursor backwards from ``stop`` instead of passing both bounds to
    ``iterator(reverse=True)``: plyvel 1.5.1 returns nothing for a reverse
    range with a lower bound that holds a single key (a1,a2,a3,a5 and
    [a3, a5) reversed gives ``[]``), so the lower bound is checked here.
    """
    try:
        cursor = reader.iterator()
        if stop is None:
            cursor.seek_to_stop()
        else:
            cursor.seek(stop)
        try:
            while True:
                try:
                    item: Item = cursor.prev()
                except StopIteration:
                    return
                if start is not None and item[0] < start:
                    return
                yield item
        finally:
            cursor.close()
    except BACKEND_ERRORS as exc:
        raise backend_error(exc) from exc


def tree_bounds(
    base: bytes, start: bytes | None, stop: bytes | None, prefix: bytes | None
) -> tuple[bytes, bytes | None]:
    """Full-key [lo, hi) of a tree (id prefix ``base``) scan by range or by prefix."""
    if prefix is not None:
        lo = base + prefix
        hi = prefix_upper_bound(lo)
        return lo, hi if hi is not None else prefix_upper_bound(base)
    lo = base + start if start is not None else base
    return lo, base + stop if stop is not None else prefix_upper_bound(base)


def reverse_tree_items(
    reader: Any, base: bytes, start: bytes | None, stop: bytes | None, prefix: bytes | None
) -> Iterator[Item]:
    """A tree's (key, value) pairs in descending key order, keys without ``base``."""
    lo, hi = tree_bounds(base, start, stop, prefix)
    n = len(base)
    for key, value in reverse_items(reader, lo, hi):
        yield key[n:], value


class Detached:
    """Stands in for a plyvel handle once a tree is dropped or its store closed.

    Every attribute is a callable raising ``error``, so the hot paths need no
    extra "is it still usable" check: the swap makes the next call fail.
    """

    __slots__ = ("_error",)

    def __init__(self, error: StorageError) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        error = self._error

        def fail(*_args: object, **_kwargs: object) -> Any:
            raise type(error)(*error.args)

        return fail
