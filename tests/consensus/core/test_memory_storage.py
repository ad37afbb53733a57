"""MemoryStorage: the reference LogStorage."""

from __future__ import annotations

import pytest

from nexus_raft.consensus.core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    LogCompacted,
    LogUnavailable,
    MemoryStorage,
    SnapshotMeta,
)
from nexus_raft.errors import RaftUsageError

CS = ConfState(frozenset({1, 2, 3}))


def ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(i, term, data=f"v{i}".encode()) for i in range(lo, hi + 1)]


def test_empty_storage_invariants() -> None:
    st = MemoryStorage(CS)
    assert st.first_index() == 1 and st.last_index() == 0
    assert st.term(0) == 0
    assert st.initial_state() == (HardState(), CS)
    assert st.entries(1, 1) == []
    with pytest.raises(LogUnavailable):
        st.term(1)


def test_append_replaces_tail_and_rejects_gaps() -> None:
    st = MemoryStorage(CS)
    st.append(ents(1, 5))
    st.append(ents(4, 6, term=2))
    assert [(e.index, e.term) for e in st.entries(1, 7)] == [
        (1, 1),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
        (6, 2),
    ]
    with pytest.raises(RaftUsageError):
        st.append(ents(9, 9))


def test_entries_respects_max_bytes_but_returns_one() -> None:
    st = MemoryStorage(CS)
    st.append(ents(1, 5))
    assert len(st.entries(1, 6, max_bytes=1)) == 1
    one = ents(1, 1)[0].size()
    assert len(st.entries(1, 6, max_bytes=2 * one)) == 2


def test_create_snapshot_compacts() -> None:
    st = MemoryStorage(CS)
    st.append(ents(1, 5))
    meta = st.create_snapshot(3)
    assert meta == SnapshotMeta(3, 1, CS)
    assert st.first_index() == 4 == st.snapshot().index + 1
    assert st.term(3) == 1
    with pytest.raises(LogCompacted):
        st.entries(3, 5)
    with pytest.raises(RaftUsageError):
        st.create_snapshot(9)
    st.append(ents(2, 6))  # compacted part is skipped
    assert st.last_index() == 6


def test_apply_snapshot_discards_conflicting_log() -> None:
    st = MemoryStorage(CS)
    st.append(ents(1, 3))
    st.apply_snapshot(SnapshotMeta(10, 4, CS))
    assert st.first_index() == 11 and st.last_index() == 10
    st2 = MemoryStorage(CS)
    st2.append(ents(1, 6))
    st2.apply_snapshot(SnapshotMeta(4, 1, CS))  # agrees with the log: keep the tail
    assert st2.last_index() == 6


def test_initial_state_replays_conf_entries() -> None:
    st = MemoryStorage(CS)
    cc = ConfChange(ConfChangeType.ADD_WITNESS, 4)
    st.append([Entry(1, 1), Entry(2, 1, EntryType.CONF_CHANGE, cc.encode())])
    _, cs = st.initial_state()
    assert cs.witnesses == {4} and cs.voters == {1, 2, 3, 4}


def test_drop_payloads_keeps_conf_entries() -> None:
    st = MemoryStorage(CS)
    cc = ConfChange(ConfChangeType.REMOVE, 3).encode()
    st.append([*ents(1, 2), Entry(3, 1, EntryType.CONF_CHANGE, cc), *ents(4, 5)])
    st.drop_payloads(4)
    got = st.entries(1, 6)
    assert [e.data is None for e in got] == [True, True, False, True, False]
    assert st.payload_floor == 4
    assert st.payload_bytes() == len(cc) + 2


def test_type_errors_name_the_argument() -> None:
    st = MemoryStorage(CS)
    with pytest.raises(TypeError, match="hs"):
        st.set_hard_state("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="meta"):
        st.apply_snapshot(3)  # type: ignore[arg-type]
