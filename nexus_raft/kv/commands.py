"""Commands the replicated KV state machine applies, and the results it returns.

Both travel as compact binary records (``struct`` headers, then raw bytes): a
command is the payload of one Raft log entry, a result is what the proposer
gets back. Never JSON: these are on the hot path and in every log entry.

Command layout (big-endian)::

    magic:u8 op:u8 flags:u8 client_id:u64 seq:u64 timestamp_ms:u64
    key_len:u32 value_len:u32 expected_len:u32  key value expected

Result layout::

    magic:u8 code:u8 flags:u8 revision:u64 prev_len:u32 error_len:u32  prev error(utf-8)

Decoding checks every length exactly, so a truncated or padded record is a
:class:`~nexus_raft.errors.InvalidCommand`, never a silently wrong command.

A *group* carries several commands in ONE log entry (a client batch: one
entry to encode, replicate, persist and apply instead of one per write);
its result carries one result per command, in order::

    group:        magic(0xC2):u8 count:u32  (len:u32 command) * count
    group result: magic(0xD2):u8 count:u32  (len:u32 result) * count

Each command of a group is applied as if it had its own entry (its own
session check and result, its own revision when it changes something), in
order, all in the entry's one write batch. Groups do not nest.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from nexus_raft.errors import InvalidCommand

__all__ = [
    "MAX_KEY_BYTES",
    "KVCommand",
    "KVOp",
    "KVResult",
    "ResultCode",
    "ParsedCommand",
    "as_key",
    "encode_group",
    "encode_group_result",
    "encode_result",
    "parse_command",
    "split_group",
    "split_group_result",
    "validate_key",
]

MAX_KEY_BYTES = 4096
"""Longest key accepted (bytes of UTF-8)."""

_U64_MAX = (1 << 64) - 1

_CMD_MAGIC = 0xC1
_CMD = struct.Struct(">BBBQQQIII")
_F_VALUE = 1
_F_EXPECTED = 2
_F_EXPECT_ABSENT = 4

_CMD_SIZE = _CMD.size
_CMD_UNPACK = _CMD.unpack_from
_F_ALL = _F_VALUE | _F_EXPECTED | _F_EXPECT_ABSENT

_RES_MAGIC = 0xD1
_RES = struct.Struct(">BBBQII")
_RES_PACK = _RES.pack
_F_PREV = 1

GROUP_MAGIC = 0xC2
GROUP_RESULT_MAGIC = 0xD2
_GROUP_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")
_LEN_PACK = _LEN.pack
_LEN_UNPACK = _LEN.unpack_from


class KVOp(enum.IntEnum):
    """What a command does to its key."""

    PUT = 1
    DELETE = 2
    CAS = 3  # compare ``expected`` (or absence) with the current value, then set or delete


class ResultCode(enum.IntEnum):
    """Why a command did (not) take effect; ``OK`` is the only success."""

    OK = 0
    CAS_FAILED = 1  # the comparison failed; nothing changed
    INVALID = 2  # malformed command bytes or key
    TOO_LARGE = 3  # value over the state machine's limit
    STALE = 4  # an older sequence number than the session's last one
    ALREADY_APPLIED = 5  # the log index was applied before (and its result is gone)


def as_key(key: bytes | str, name: str = "key") -> bytes:
    """``key`` as bytes (``str`` is UTF-8 encoded); TypeError naming ``name`` otherwise."""
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"{name} must be bytes or str, not {type(key).__name__}")


def validate_key(key: bytes, max_bytes: int = MAX_KEY_BYTES) -> str | None:
    """Why ``key`` is not a valid hierarchical key, or None when it is.

    Keys are non-empty UTF-8 paths with "/" separators, at most ``max_bytes``
    long and free of NUL (NUL would break prefix listing's segment logic in
    other tools that treat keys as C strings).
    """
    if not key:
        return "key must not be empty"
    if len(key) > max_bytes:
        return f"key is {len(key)} bytes, the limit is {max_bytes}"
    if b"\x00" in key:
        return "key must not contain NUL"
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return "key must be valid UTF-8"
    return None


def _check_u64(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _U64_MAX:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")


def _check_opt_bytes(value: object, name: str) -> None:
    if value is not None and not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes or None, not {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class KVCommand:
    """One write to the KV state machine.

    ``client_id``/``seq`` identify it for exactly-once retries (``client_id``
    0 means "no session": never deduplicated). ``timestamp_ms`` is the
    proposer's wall clock, carried in the log so that session expiry is the
    same on every replica. For ``CAS``: ``expect_absent`` means the key must
    not exist, else ``expected`` must equal the current value; ``value`` None
    deletes on success.
    """

    op: KVOp
    key: bytes
    value: bytes | None = None
    expected: bytes | None = None
    expect_absent: bool = False
    client_id: int = 0
    seq: int = 0
    timestamp_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.op, KVOp):
            raise TypeError(f"op must be a KVOp, not {type(self.op).__name__}")
        if not isinstance(self.key, bytes):
            raise TypeError(f"key must be bytes, not {type(self.key).__name__}")
        _check_opt_bytes(self.value, "value")
        _check_opt_bytes(self.expected, "expected")
        if not isinstance(self.expect_absent, bool):
            raise TypeError("expect_absent must be a bool")
        _check_u64(self.client_id, "client_id")
        _check_u64(self.seq, "seq")
        _check_u64(self.timestamp_ms, "timestamp_ms")
        if self.op is KVOp.PUT and self.value is None:
            raise ValueError("a PUT needs a value")
        if self.op is KVOp.DELETE and self.value is not None:
            raise ValueError("a DELETE takes no value")
        if self.op is not KVOp.CAS and (self.expected is not None or self.expect_absent):
            raise ValueError("expected/expect_absent only apply to CAS")
        if self.expect_absent and self.expected is not None:
            raise ValueError("expect_absent and expected are exclusive")

    # --- constructors --------------------------------------------------------------

    @classmethod
    def put(
        cls,
        key: bytes | str,
        value: bytes,
        *,
        client_id: int = 0,
        seq: int = 0,
        timestamp_ms: int = 0,
    ) -> KVCommand:
        """A PUT of ``value`` at ``key``."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        return cls(
            KVOp.PUT,
            as_key(key),
            bytes(value),
            client_id=client_id,
            seq=seq,
            timestamp_ms=timestamp_ms,
        )

    @classmethod
    def delete(
        cls, key: bytes | str, *, client_id: int = 0, seq: int = 0, timestamp_ms: int = 0
    ) -> KVCommand:
        """A DELETE of ``key``."""
        return cls(
            KVOp.DELETE, as_key(key), client_id=client_id, seq=seq, timestamp_ms=timestamp_ms
        )

    @classmethod
    def cas(
        cls,
        key: bytes | str,
        expected: bytes | None,
        new: bytes | None,
        *,
        client_id: int = 0,
        seq: int = 0,
        timestamp_ms: int = 0,
    ) -> KVCommand:
        """Compare-and-swap: ``expected`` None means "must be absent", ``new`` None deletes."""
        _check_opt_bytes(expected, "expected")
        _check_opt_bytes(new, "new")
        return cls(
            KVOp.CAS,
            as_key(key),
            new,
            expected,
            expected is None,
            client_id=client_id,
            seq=seq,
            timestamp_ms=timestamp_ms,
        )

    # --- codec --------------------------------------------------------------------

    def encode(self) -> bytes:
        """The compact binary form (see the module docstring)."""
        flags = 0
        value = self.value
        if value is not None:
            flags |= _F_VALUE
        else:
            value = b""
        expected = self.expected
        if expected is not None:
            flags |= _F_EXPECTED
        else:
            expected = b""
        if self.expect_absent:
            flags |= _F_EXPECT_ABSENT
        head = _CMD.pack(
            _CMD_MAGIC,
            int(self.op),
            flags,
            self.client_id,
            self.seq,
            self.timestamp_ms,
            len(self.key),
            len(value),
            len(expected),
        )
        return b"".join((head, self.key, value, expected))

    @classmethod
    def decode(cls, data: bytes) -> KVCommand:
        """Parse :meth:`encode` output; :class:`InvalidCommand` for anything else."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        op, key, value, expected, absent, client_id, seq, ts = parse_command(bytes(data))
        # parse_command checked the same rules as __post_init__, so the
        # constructor's type checks are skipped: every field is already of
        # the right type by construction.
        cmd = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(cmd, "op", op)
        setattr_(cmd, "key", key)
        setattr_(cmd, "value", value)
        setattr_(cmd, "expected", expected)
        setattr_(cmd, "expect_absent", absent)
        setattr_(cmd, "client_id", client_id)
        setattr_(cmd, "seq", seq)
        setattr_(cmd, "timestamp_ms", ts)
        return cmd


ParsedCommand = tuple[KVOp, bytes, "bytes | None", "bytes | None", bool, int, int, int]
"""(op, key, value, expected, expect_absent, client_id, seq, timestamp_ms)."""


def parse_command(raw: bytes) -> ParsedCommand:
    """The fields of an encoded command, validated like :meth:`KVCommand.decode`.

    The apply hot path uses this directly: a tuple costs far less to build
    than a frozen dataclass. :class:`InvalidCommand` for anything malformed.
    """
    size = len(raw)
    if size < _CMD_SIZE:
        raise InvalidCommand(f"command is {size} bytes, shorter than its header")
    magic, op, flags, client_id, seq, ts, klen, vlen, elen = _CMD_UNPACK(raw)
    if magic != _CMD_MAGIC:
        raise InvalidCommand(f"bad command magic {magic:#x}")
    if klen + vlen + elen != size - _CMD_SIZE:
        raise InvalidCommand("command lengths do not match its size")
    if flags & ~_F_ALL:
        raise InvalidCommand(f"unknown command flags {flags:#x}")
    kv_op = _OPS.get(op)
    if kv_op is None:
        raise InvalidCommand(f"unknown command op {op}")
    pos = _CMD_SIZE + klen
    if flags == _F_VALUE and not elen and kv_op is KVOp.PUT:  # the common case: a plain PUT
        return kv_op, raw[_CMD_SIZE:pos], raw[pos:], None, False, client_id, seq, ts
    has_value = flags & _F_VALUE
    has_expected = flags & _F_EXPECTED
    absent = bool(flags & _F_EXPECT_ABSENT)
    if (not has_value and vlen) or (not has_expected and elen):
        raise InvalidCommand("value/expected bytes without their flag")
    if kv_op is KVOp.PUT and not has_value:
        raise InvalidCommand("a PUT needs a value")
    if kv_op is KVOp.DELETE and has_value:
        raise InvalidCommand("a DELETE takes no value")
    if kv_op is not KVOp.CAS and (has_expected or absent):
        raise InvalidCommand("expected/expect_absent only apply to CAS")
    if absent and has_expected:
        raise InvalidCommand("expect_absent and expected are exclusive")
    return (
        kv_op,
        raw[_CMD_SIZE:pos],
        raw[pos : pos + vlen] if has_value else None,
        raw[pos + vlen :] if has_expected else None,
        absent,
        client_id,
        seq,
        ts,
    )


def encode_result(
    code: ResultCode, revision: int, prev: bytes | None = None, error: str = ""
) -> bytes:
    """The binary form of a :class:`KVResult` without building one (the apply hot path)."""
    if error:
        err = error.encode("utf-8")
        if prev is None:
            return _RES_PACK(_RES_MAGIC, code, 0, revision, 0, len(err)) + err
        return _RES_PACK(_RES_MAGIC, code, _F_PREV, revision, len(prev), len(err)) + prev + err
    if prev is None:
        return _RES_PACK(_RES_MAGIC, code, 0, revision, 0, 0)
    return _RES_PACK(_RES_MAGIC, code, _F_PREV, revision, len(prev), 0) + prev


_OPS = {int(op): op for op in KVOp}


@dataclass(frozen=True, slots=True)
class KVResult:
    """What the proposer of a command gets back.

    ``revision`` is the log index of the change on success, otherwise the
    state machine's revision when the command was applied. ``prev_value`` is
    the key's value before the command (None if it was absent). ``error`` is
    a human-readable reason when ``ok`` is false and ``code`` is not
    ``CAS_FAILED``.
    """

    ok: bool
    revision: int
    prev_value: bytes | None = None
    error: str = ""
    code: ResultCode = ResultCode.OK

    def encode(self) -> bytes:
        """The compact binary form (see the module docstring)."""
        return encode_result(self.code, self.revision, self.prev_value, self.error)

    @classmethod
    def decode(cls, data: bytes) -> KVResult:
        """Parse :meth:`encode` output; :class:`InvalidCommand` for anything else."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if len(data) < _RES.size:
            raise InvalidCommand("result shorter than its header")
        magic, code, flags, revision, plen, elen = _RES.unpack_from(data)
        if magic != _RES_MAGIC or plen + elen != len(data) - _RES.size:
            raise InvalidCommand("malformed result")
        try:
            rcode = ResultCode(code)
        except ValueError:
            raise InvalidCommand(f"unknown result code {code}") from None
        pos = _RES.size
        prev = bytes(data[pos : pos + plen]) if flags & _F_PREV else None
        error = bytes(data[pos + plen :]).decode("utf-8", errors="replace")
        return cls(rcode is ResultCode.OK, revision, prev, error, rcode)

    @classmethod
    def failure(cls, code: ResultCode, revision: int, error: str = "") -> KVResult:
        """A result for a command that changed nothing."""
        return cls(False, revision, None, error, code)


# --- groups: several commands in one log entry ----------------------------------------------


def _join(magic: int, parts: list[bytes]) -> bytes:
    out = [_GROUP_HEAD.pack(magic, len(parts))]
    for part in parts:
        out.append(_LEN_PACK(len(part)))
        out.append(part)
    return b"".join(out)


def _split(magic: int, raw: bytes, what: str) -> list[bytes]:
    size = len(raw)
    if size < _GROUP_HEAD.size:
        raise InvalidCommand(f"{what} is {size} bytes, shorter than its header")
    got, count = _GROUP_HEAD.unpack_from(raw)
    if got != magic:
        raise InvalidCommand(f"bad {what} magic {got:#x}")
    pos = _GROUP_HEAD.size
    parts: list[bytes] = []
    for _ in range(count):
        if pos + 4 > size:
            raise InvalidCommand(f"{what} is cut short")
        (length,) = _LEN_UNPACK(raw, pos)
        pos += 4
        end = pos + length
        if end > size:
            raise InvalidCommand(f"{what} is cut short")
        parts.append(raw[pos:end])
        pos = end
    if pos != size:
        raise InvalidCommand(f"{what} has {size - pos} bytes after its last part")
    return parts


def encode_group(commands: list[bytes]) -> bytes:
    """One log entry's payload carrying ``commands`` (encoded commands, not groups)."""
    return _join(GROUP_MAGIC, commands)


def split_group(raw: bytes) -> list[bytes]:
    """The commands of a group; :class:`InvalidCommand` when malformed."""
    return _split(GROUP_MAGIC, raw, "command group")


def encode_group_result(results: list[bytes]) -> bytes:
    """The result of a group: one encoded result per command, in order."""
    return _join(GROUP_RESULT_MAGIC, results)


def split_group_result(raw: bytes) -> list[bytes]:
    """The per-command results of a group's result; :class:`InvalidCommand` when malformed."""
    return _split(GROUP_RESULT_MAGIC, raw, "group result")
