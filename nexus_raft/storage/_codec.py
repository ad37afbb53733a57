"""Argument validation and encoding for keys, values and tree names.

The public methods keep a ``type(x) is bytes`` fast path inline and call into
this module only for the less common types, so the common case costs one
identity comparison. Every rejection is a ``TypeError`` naming the argument.
"""

from __future__ import annotations

from typing import Any


def encode_key(key: object, arg: str) -> bytes:
    """Return ``key`` as bytes; ``str`` is UTF-8 encoded.

    Raises TypeError naming ``arg`` for anything that is not ``bytes`` or ``str``.
    """
    if isinstance(key, bytes):
        return bytes(key) if type(key) is not bytes else key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"{arg} must be bytes or str, not {type(key).__name__}")


def encode_value(value: object, arg: str) -> bytes:
    """Return ``value`` as immutable bytes (a copy for bytearray/memoryview).

    Raises TypeError naming ``arg`` for anything else (``str`` included:
    values are binary; use ``set_json`` or encode explicitly).
    """
    if isinstance(value, bytes):
        return bytes(value) if type(value) is not bytes else value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(
        f"{arg} must be bytes, bytearray or memoryview, not {type(value).__name__}"
    )


def encode_optional_value(value: object, arg: str) -> bytes | None:
    """Like :func:`encode_value` but ``None`` passes through (absent / delete)."""
    if value is None:
        return None
    if type(value) is bytes:
        return value
    return encode_value(value, arg)


def check_tree_name(name: object, arg: str = "name") -> str:
    """Validate a tree name: a non-empty ``str`` that encodes as UTF-8."""
    if not isinstance(name, str):
        raise TypeError(f"{arg} must be str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{arg} must not be empty")
    name.encode("utf-8")  # surrogates raise UnicodeEncodeError (a ValueError) here
    return name


def check_bool(value: Any, arg: str) -> bool:
    """Reject non-bool flags (``reverse=1`` is almost always a mistake)."""
    if type(value) is not bool:
        raise TypeError(f"{arg} must be bool, not {type(value).__name__}")
    return value


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``.

    Trailing ``0xff`` bytes cannot be incremented, so they are dropped and the
    byte before them is incremented. ``None`` means there is no such bound
    (the prefix is empty or all ``0xff``): scan to the end.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))
