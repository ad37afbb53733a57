"""Input rules of the KV service: key format, size limits, member arguments.

The service checks every request against these rules before anything is
proposed, so a bad request costs no log entry and gets a clear
``INVALID_ARGUMENT``/``TOO_LARGE`` answer. The client uses :func:`as_key` and
:func:`as_value` only for Python type checks (``TypeError``); the format and
size rules are enforced by the server, the one authority.

Key format: one rule set for the whole node, the state machine's
:func:`nexus_raft.kv.commands.validate_key`: a key is a non-empty
UTF-8 path with ``/`` separators (``users/alice``), at most
:data:`MAX_KEY_BYTES` bytes, without NUL bytes. The service checks it first
so a bad key never reaches the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_raft.errors import InvalidArgument, TooLarge
from nexus_raft.kv.commands import MAX_KEY_BYTES, validate_key

MAX_VALUE_BYTES = 1 << 20
"""Largest accepted value (1 MiB)."""

MAX_BATCH_OPS = 4096
"""Most operations in one Batch RPC."""

MEMBER_ROLES = frozenset({"voter", "learner", "witness"})
"""Roles accepted by AddMember."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits one service enforces (defaults: the module constants)."""

    max_key_bytes: int = MAX_KEY_BYTES
    max_value_bytes: int = MAX_VALUE_BYTES
    max_batch_ops: int = MAX_BATCH_OPS

    def check_key(self, key: bytes) -> bytes:
        """Return ``key`` if it is well formed, else raise ``InvalidArgument``/``TooLarge``."""
        if len(key) > self.max_key_bytes:
            raise TooLarge(f"key is {len(key)} bytes; the limit is {self.max_key_bytes}")
        reason = validate_key(key, self.max_key_bytes)
        if reason is not None:
            raise InvalidArgument(f"{reason}: {shown(key[:64])}")
        return key

    def check_prefix(self, prefix: bytes) -> bytes:
        """Like :meth:`check_key`, but an empty prefix (everything) is allowed."""
        if prefix:
            reason = validate_key(prefix, self.max_key_bytes)
            if reason is not None:
                if len(prefix) > self.max_key_bytes:
                    raise TooLarge(reason.replace("key", "prefix", 1))
                raise InvalidArgument(f"{reason.replace('key', 'prefix', 1)}: {shown(prefix[:64])}")
        return prefix

    def check_value(self, value: bytes, *, what: str = "value") -> bytes:
        """Return ``value`` if it is within the size limit, else raise ``TooLarge``."""
        if len(value) > self.max_value_bytes:
            raise TooLarge(
                f"{what} is {len(value)} bytes; the limit is {self.max_value_bytes} bytes"
            )
        return value


def check_member_id(node_id: int) -> int:
    """Member ids are positive 64-bit integers."""
    if node_id <= 0 or node_id >= 1 << 63:
        raise InvalidArgument(f"member id must be a positive integer, got {node_id}")
    return node_id


def check_address(address: str) -> str:
    """``HOST:PORT`` with a non-empty host and a port in 1..65535."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"member address must be HOST:PORT, got {address!r}")
    return address


def check_role(role: str) -> str:
    """One of :data:`MEMBER_ROLES`; an empty string means ``"voter"``."""
    role = role or "voter"
    if role not in MEMBER_ROLES:
        raise InvalidArgument(f"member role must be one of {sorted(MEMBER_ROLES)}, got {role!r}")
    return role


def shown(data: bytes) -> str:
    """``data`` quoted for an error message: UTF-8 text, ``\\xNN`` for anything else.

    Never a Python ``b'...'`` repr: the message reaches people through
    ``nexusctl`` and other clients.
    """
    text = data.decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return f"'{text}'"


def as_key(key: object, *, name: str = "key") -> bytes:
    """Accept ``bytes`` or ``str`` (UTF-8); anything else is a ``TypeError`` naming ``name``."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"{name} must be bytes or str, not {type(key).__name__}")


def as_value(value: object, *, name: str = "value") -> bytes:
    """Values are ``bytes`` only (``bytearray``/``memoryview`` are copied)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
