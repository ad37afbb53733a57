"""A follower never acknowledges entries that a newer leader replaced before its next Ready.

A follower's AppendResponse waits in ``msgs`` until the next Ready, which the
driver sends only after persisting that Ready's entries. When an append of
term 1 and then one of term 2 that overwrites it arrive between two Readies,
the term-1 acknowledgement used to leave with the Ready although the entries
it names were never persisted (the term-2 ones replaced them): the old leader
heard of a durable copy that does not exist. Found by the core simulator
(seed 85 with the witness-leader skipping change: a learner got the old
leader's append and the new leader's in one batch; invariant "append
persisted before acknowledged").
"""

from __future__ import annotations

import random

from nexus_raft.consensus.core import Config, ConfState, Entry, EntryType, MemoryStorage, Raft
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    HardState,
    SnapshotMeta,
    SnapshotRequest,
)


def follower() -> Raft:
    storage = MemoryStorage(ConfState(frozenset({1, 2, 3})))
    storage.set_hard_state(HardState(1, 0, 0))
    return Raft(Config(id=2), storage, random.Random(0))


def acks(r: Raft) -> list[AppendResponse]:
    rd = r.ready()
    return [m for m in rd.messages if isinstance(m, AppendResponse) and not m.reject]


def old_leaders_append(r: Raft) -> None:
    ents = tuple(Entry(i, 1, EntryType.NORMAL, b"old%d" % i) for i in (1, 2, 3))
    r.step(AppendRequest(frm=1, to=2, term=1, prev_index=0, prev_term=0, entries=ents))


def test_follower_withdraws_ack_of_entries_a_newer_leader_overwrote_before_ready() -> None:
    r = follower()
    old_leaders_append(r)
    r.step(AppendRequest(frm=3, to=2, term=2, prev_index=1, prev_term=1,
                         entries=(Entry(2, 2, EntryType.NORMAL, b"new2"),)))
    rd = r.ready()
    assert [(e.index, e.term) for e in rd.entries] == [(1, 1), (2, 2)]
    sent = [(m.to, m.term, m.index) for m in rd.messages
            if isinstance(m, AppendResponse) and not m.reject]
    assert sent == [(3, 2, 2)], "the term-1 ack of 1..3 names entries never persisted"


def test_follower_keeps_ack_of_entries_a_newer_leader_did_not_touch() -> None:
    r = follower()
    old_leaders_append(r)
    r.step(AppendRequest(frm=3, to=2, term=2, prev_index=3, prev_term=1,
                         entries=(Entry(4, 2, EntryType.NORMAL, b"new4"),)))
    assert [(m.to, m.index) for m in acks(r)] == [(1, 3), (3, 4)]


def test_follower_withdraws_ack_of_entries_a_newer_leaders_snapshot_replaced() -> None:
    r = follower()
    old_leaders_append(r)
    snap = SnapshotMeta(index=2, term=2, conf_state=ConfState(frozenset({1, 2, 3})))
    r.step(SnapshotRequest(frm=3, to=2, term=2, snapshot=snap))
    assert [(m.to, m.index) for m in acks(r)] == [(3, 2)]
