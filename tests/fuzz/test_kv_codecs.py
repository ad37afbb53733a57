"""KV command, result and record codecs (kv/commands.py, kv/records.py, kv/sessions.py).

Commands arrive in committed log entries and results in answers; records are
read back from the store. Damaged bytes must give ``InvalidCommand`` (commands
and results) or ``CorruptionError`` (stored records), never another exception:
an apply that raised anything else would stop the node's applier.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexus_raft.errors import CorruptionError, InvalidCommand
from nexus_raft.kv.commands import KVCommand, KVResult, parse_command
from nexus_raft.kv.records import decode_event, decode_record, decode_u64, split_event_key
from nexus_raft.kv.sessions import decode_session
from tests.fuzz.settings import fuzz

u64 = st.integers(0, 2**64 - 1)


@st.composite
def damaged_commands(draw: st.DrawFn) -> bytes:
    """A valid encoded command with a few bytes replaced, cut or appended."""
    key = draw(st.binary(min_size=1, max_size=12))
    kind = draw(st.sampled_from(("put", "delete", "cas")))
    if kind == "put":
        cmd = KVCommand.put(key, draw(st.binary(max_size=12)))
    elif kind == "delete":
        cmd = KVCommand.delete(key)
    else:
        cmd = KVCommand.cas(key, draw(st.one_of(st.none(), st.binary(max_size=6))),
                            draw(st.one_of(st.none(), st.binary(max_size=6))))
    raw = bytearray(cmd.encode())
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(("flip", "cut", "grow")))
        if how == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif how == "cut" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)):]
        else:
            raw += draw(st.binary(min_size=1, max_size=4))
    return bytes(raw)


@fuzz
@given(st.one_of(st.binary(max_size=80), damaged_commands()))
def test_command_decode(raw: bytes) -> None:
    try:
        cmd = KVCommand.decode(raw)
    except InvalidCommand:
        try:
            parse_command(raw)
        except InvalidCommand:
            return
        raise AssertionError("parse_command accepted what KVCommand.decode refused") from None
    assert KVCommand.decode(cmd.encode()) == cmd


@fuzz
@given(st.binary(max_size=80))
def test_result_decode(raw: bytes) -> None:
    try:
        res = KVResult.decode(raw)
    except InvalidCommand:
        return
    assert isinstance(res, KVResult)


@fuzz
@given(st.binary(max_size=60), u64)
def test_stored_records_decode(raw: bytes, main: int) -> None:
    for decode in (decode_record, decode_u64, split_event_key,
                   lambda r: decode_event(r, main), lambda r: decode_session(r[:8], r[8:])):
        try:
            decode(raw)
        except CorruptionError:
            pass
