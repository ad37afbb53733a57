"""The simulator's state machine: a dict of key -> (value, index written at).

Commands are tiny puts, ``b"<key>=<value>"``, with values unique per run so a
read can tell exactly which write it sees. Empty entries (a new leader's
no-op) and configuration entries are not commands.
"""

from __future__ import annotations


def encode_put(key: bytes, value: int) -> bytes:
    """The command that sets ``key`` to the unique ``value``."""
    return b"%s=%d" % (key, value)


def decode_put(data: bytes) -> tuple[bytes, bytes]:
    """(key, value) of a put command."""
    key, sep, value = data.partition(b"=")
    if not sep:
        raise ValueError(f"not a put command: {data!r}")
    return key, value


class KV:
    """A key-value state machine applied from committed entries."""

    __slots__ = ("data",)

    def __init__(self, data: dict[bytes, tuple[bytes, int]] | None = None) -> None:
        self.data: dict[bytes, tuple[bytes, int]] = {} if data is None else data

    def apply(self, index: int, command: bytes) -> None:
        """Apply the put ``command`` committed at ``index``."""
        key, value = decode_put(command)
        self.data[key] = (value, index)

    def written_at(self, key: bytes) -> int:
        """Index of the write this state holds for ``key`` (0: never written)."""
        got = self.data.get(key)
        return got[1] if got is not None else 0

    def copy(self) -> KV:
        """An independent copy (values are immutable tuples, so shallow is enough)."""
        return KV(dict(self.data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KV) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]
