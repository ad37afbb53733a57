"""Read methods shared by a live :class:`Tree` and a :class:`SnapshotTree`.

Both keep ``_reader`` (something with plyvel's ``get(full_key)``: the DB, a
snapshot, or a :class:`~nexus_raft.storage._backend.Detached` stand-in) and
``_prefix`` (the tree's fixed-length id prefix), and implement ``_iterator``.
So a snapshot reads exactly like the tree it was taken from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from nexus_raft.storage._backend import BACKEND_ERRORS, backend_error
from nexus_raft.storage._codec import check_bool, encode_key

Item = tuple[bytes, bytes]


class ReadMethods:
    """Point reads and ordered scans over one tree; keys are returned without prefix."""

    __slots__ = ()
    _reader: Any
    _prefix: bytes

    def _iterator(
        self,
        start: bytes | None,
        stop: bytes | None,
        prefix: bytes | None,
        reverse: bool,
    ) -> Iterator[Item]:
        """(key, value) pairs of this tree in [start, stop) or under ``prefix``."""
        raise NotImplementedError

    def get(self, key: bytes | str) -> bytes | None:
        """The value stored under ``key``, or None."""
        if type(key) is not bytes:
            key = encode_key(key, "key")
        try:
            value: bytes | None = self._reader.get(self._prefix + key)
        except BACKEND_ERRORS as exc:
            raise backend_error(exc) from exc
        return value

    def contains(self, key: bytes | str) -> bool:
        """Whether ``key`` is present."""
        return self.get(key) is not None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (bytes, str)):
            raise TypeError(f"key must be bytes or str, not {type(key).__name__}")
        return self.get(key) is not None

    def get_json(self, key: bytes | str) -> object | None:
        """The JSON value stored under ``key`` by ``set_json`` (decoded), or None."""
        raw = self.get(key)
        return None if raw is None else orjson.loads(raw)

    def iter(self, reverse: bool = False) -> Iterator[Item]:
        """Every (key, value) pair in key order (descending with ``reverse=True``)."""
        if reverse is not False:
            check_bool(reverse, "reverse")
        return self._iterator(None, None, None, reverse)

    def __iter__(self) -> Iterator[Item]:
        return self._iterator(None, None, None, False)

    def range(
        self,
        start: bytes | str | None,
        end: bytes | str | None,
        reverse: bool = False,
    ) -> Iterator[Item]:
        """Pairs with ``start <= key < end``; None leaves that end open."""
        if start is not None and type(start) is not bytes:
            start = encode_key(start, "start")
        if end is not None and type(end) is not bytes:
            end = encode_key(end, "end")
        if reverse is not False:
            check_bool(reverse, "reverse")
        return self._iterator(start, end, None, reverse)

    def scan_prefix(self, prefix: bytes | str, reverse: bool = False) -> Iterator[Item]:
        """Pairs whose key starts with ``prefix`` (correct for ``\\xff`` bytes too)."""
        if type(prefix) is not bytes:
            prefix = encode_key(prefix, "prefix")
        if reverse is not False:
            check_bool(reverse, "reverse")
        if not prefix:
            return self._iterator(None, None, None, reverse)
        return self._iterator(None, None, prefix, reverse)

    def keys(self, reverse: bool = False) -> Iterator[bytes]:
        """Every key in order (values are still read by LevelDB, then dropped)."""
        return (key for key, _ in self.iter(reverse))

    def first(self) -> Item | None:
        """The pair with the smallest key, or None if the tree is empty."""
        return next(self._iterator(None, None, None, False), None)

    def last(self) -> Item | None:
        """The pair with the largest key, or None if the tree is empty."""
        return next(self._iterator(None, None, None, True), None)

    def count(self) -> int:
        """Number of keys (a full scan: O(n))."""
        return sum(1 for _ in self._iterator(None, None, None, False))
