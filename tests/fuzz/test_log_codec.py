"""The durable log's codecs (consensus/log/codec.py): damaged records raise CorruptionError.

A log entry, the hard state and the snapshot record are read back from
LevelDB at every start; a damaged value must be reported as corruption (so
the node refuses to start on it), never decoded into a wrong value silently
or crash with a ``struct.error``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nexus_raft.consensus.core.messages import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    SnapshotMeta,
)
from nexus_raft.consensus.log import codec
from nexus_raft.errors import CorruptionError
from tests.fuzz.settings import fuzz

u64 = st.integers(0, 2**64 - 1)


@fuzz
@given(u64, st.binary(max_size=64))
def test_decode_entry_arbitrary_bytes(index: int, raw: bytes) -> None:
    try:
        e = codec.decode_entry(index, raw)
    except CorruptionError:
        return
    assert isinstance(e, Entry) and e.index == index
    assert codec.encode_entry(e) == raw  # what decodes is exactly what was written


@fuzz
@given(st.binary(max_size=40))
def test_decode_hard_state_arbitrary_bytes(raw: bytes) -> None:
    try:
        hs = codec.decode_hard_state(raw)
    except CorruptionError:
        return
    assert codec.encode_hard_state(hs) == raw


@fuzz
@given(st.binary(max_size=120))
def test_decode_snapshot_arbitrary_bytes(raw: bytes) -> None:
    try:
        meta = codec.decode_snapshot(raw)
    except CorruptionError:
        return
    assert isinstance(meta, SnapshotMeta)


@fuzz
@given(u64, u64, st.lists(st.integers(1, 9), max_size=4), st.lists(st.integers(1, 9), max_size=3),
       st.lists(st.integers(1, 9), max_size=2), st.integers(0, 60), st.integers(0, 255))
def test_decode_snapshot_damaged_record(
    index: int, term: int, voters: list[int], learners: list[int], witnesses: list[int],
    at: int, byte: int,
) -> None:
    """A valid record with one byte replaced: an impossible configuration (a witness that
    is not a voter, ...) or bad counts are corruption, never a ValueError."""
    try:
        cs = ConfState(frozenset(voters), frozenset(learners) - frozenset(voters),
                       frozenset(witnesses) & frozenset(voters))
    except ValueError:
        return
    raw = bytearray(codec.encode_snapshot(SnapshotMeta(index, term, cs)))
    raw[at % len(raw)] = byte
    try:
        codec.decode_snapshot(bytes(raw))
    except CorruptionError:
        pass


@fuzz
@given(st.binary(max_size=16))
def test_decode_index_arbitrary_key(key: bytes) -> None:
    try:
        index = codec.decode_index(key)
    except CorruptionError:
        return
    assert codec.encode_index(index) == key


@fuzz
@given(u64, u64, st.sampled_from(list(EntryType)), st.one_of(st.none(), st.binary(max_size=32)))
def test_entry_round_trip(index: int, term: int, kind: EntryType, data: bytes | None) -> None:
    e = Entry(index, term, kind, data)
    assert codec.decode_entry(index, codec.encode_entry(e)) == e


@fuzz
@given(u64, u64, u64)
def test_hard_state_round_trip(term: int, vote: int, commit: int) -> None:
    hs = HardState(term, vote, commit)
    assert codec.decode_hard_state(codec.encode_hard_state(hs)) == hs
