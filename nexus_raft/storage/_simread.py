"""Reads of the simulated disk: plyvel-style cursors over frozen views.

Private to :mod:`nexus_raft.storage.simulated`: a handle, its prefixed views
and its snapshots share :class:`Reader`, whose iterators see the database as
it was when they were made (LevelDB's implicit snapshot), through the
copy-on-write views the disk hands out.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

__all__ = ["Cursor", "Reader"]


class Cursor:
    """A plyvel-style iterator over a frozen view: iterate, or seek/prev as a cursor."""

    __slots__ = ("_alive", "_data", "_hi", "_keys", "_lo", "_pos", "_prefix", "_rev", "_strip",
                 "_what")

    def __init__(self, alive: Callable[[], None], data: dict[bytes, bytes], keys: list[bytes],
                 lo: int, hi: int, prefix: bytes, what: int, reverse: bool) -> None:
        self._alive = alive
        self._data = data
        self._keys = keys
        self._lo = lo
        self._hi = hi
        self._prefix = prefix
        self._strip = len(prefix)
        self._what = what  # 3: (key, value), 1: key, 2: value
        self._rev = reverse
        self._pos = hi if reverse else lo

    def _item(self, i: int) -> Any:
        key = self._keys[i]
        if self._what == 3:
            return key[self._strip:], self._data[key]
        if self._what == 1:
            return key[self._strip:]
        return self._data[key]

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        self._alive()
        if self._rev:
            if self._pos <= self._lo:
                raise StopIteration
            self._pos -= 1
            return self._item(self._pos)
        if self._pos >= self._hi:
            raise StopIteration
        self._pos += 1
        return self._item(self._pos - 1)

    def prev(self) -> Any:
        """The item before the cursor (moving it back); StopIteration at the start."""
        self._alive()
        if self._pos <= self._lo:
            raise StopIteration
        self._pos -= 1
        return self._item(self._pos)

    def seek(self, target: bytes) -> None:
        """Put the cursor before the first key >= ``target``."""
        self._pos = bisect.bisect_left(self._keys, self._prefix + target, self._lo, self._hi)

    def seek_to_start(self) -> None:
        """Put the cursor before the first key."""
        self._pos = self._lo

    def seek_to_stop(self) -> None:
        """Put the cursor after the last key."""
        self._pos = self._hi

    def close(self) -> None:
        """Nothing to release (plyvel compatibility)."""

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bounds(keys: list[bytes], base: bytes, start: bytes | None, stop: bytes | None,
            prefix: bytes | None) -> tuple[int, int]:
    if prefix is not None:
        lo_key = base + prefix
        lo = bisect.bisect_left(keys, lo_key)
        hi = lo
        n = len(keys)
        while hi < n and keys[hi].startswith(lo_key):
            hi += 1
        return lo, hi
    lo = bisect.bisect_left(keys, base + (start or b""))
    if stop is not None:
        hi = bisect.bisect_left(keys, base + stop)
    elif base:
        hi = lo
        n = len(keys)
        while hi < n and keys[hi].startswith(base):
            hi += 1
    else:
        hi = len(keys)
    return lo, max(lo, hi)


class Reader:
    """The read methods shared by a handle, its prefixed views and its snapshots."""

    _prefix: bytes

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        raise NotImplementedError

    def _alive(self) -> None:
        raise NotImplementedError

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value of ``key`` (``default`` when absent)."""
        data, _ = self._peek()
        return data.get(self._prefix + key, default)

    def _peek(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        raise NotImplementedError

    def iterator(self, *, reverse: bool = False, start: bytes | None = None,
                 stop: bytes | None = None, prefix: bytes | None = None,
                 include_key: bool = True, include_value: bool = True,
                 **_ignored: object) -> Cursor:
        """Items in [start, stop) or under ``prefix``, keys without this view's prefix."""
        self._alive()
        data, keys = self._view()
        lo, hi = _bounds(keys, self._prefix, start, stop, prefix)
        what = (1 if include_key else 0) | (2 if include_value else 0)
        return Cursor(self._alive, data, keys, lo, hi, self._prefix, what, reverse)
