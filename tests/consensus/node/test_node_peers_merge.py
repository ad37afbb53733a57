"""merge_appends: queued appends to one peer collapse into one Raft-equivalent message."""

from __future__ import annotations

from nexus_raft.consensus.core.messages import AppendRequest, Entry, Heartbeat
from nexus_raft.consensus.node.peers import merge_appends


def app(prev: int, prev_term: int, n: int, *, term: int = 2, commit: int = 0,
        data: bytes = b"d") -> AppendRequest:
    ents = tuple(Entry(prev + 1 + i, term, data=data) for i in range(n))
    return AppendRequest(frm=1, to=2, term=term, prev_index=prev, prev_term=prev_term,
                         entries=ents, commit=commit)


def test_chained_appends_concatenate_with_the_later_commit() -> None:
    a, b = app(10, 2, 3, commit=9), app(13, 2, 2, commit=12)
    merged = merge_appends(a, b, 3)
    assert merged is not None
    m, size = merged
    assert (m.prev_index, m.prev_term, m.commit) == (10, 2, 12)
    assert [e.index for e in m.entries] == [11, 12, 13, 14, 15]
    assert size == 5


def test_commit_only_append_is_absorbed_either_way() -> None:
    empty = app(13, 2, 0, commit=13)
    m, _ = merge_appends(app(10, 2, 3, commit=9), empty, 3) or (None, 0)
    assert m is not None and len(m.entries) == 3 and m.commit == 13
    m2, _ = merge_appends(app(13, 2, 0, commit=12), app(13, 2, 1, commit=11), 0) or (None, 0)
    assert m2 is not None and [e.index for e in m2.entries] == [14] and m2.commit == 12


def test_non_chaining_pairs_are_left_alone() -> None:
    a = app(10, 2, 3)
    assert merge_appends(a, app(20, 2, 1), 3) is None  # gap
    assert merge_appends(a, app(13, 1, 1), 3) is None  # prev term mismatch
    assert merge_appends(a, app(13, 3, 1, term=3), 3) is None  # another term
    hb = Heartbeat(frm=1, to=2, term=2, commit=5)
    assert merge_appends(a, hb, 3) is None and merge_appends(hb, a, 0) is None


def test_merging_stops_at_the_byte_bound() -> None:
    big = 3 << 20
    a = app(10, 2, 1, data=b"x" * big)
    assert merge_appends(a, app(11, 2, 1, data=b"y" * big), big) is None
