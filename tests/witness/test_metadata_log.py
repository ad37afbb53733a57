"""The witness's durable state on real LevelDB: hard state across restarts and the metadata log.

These run the sans-I/O core in the witness role over a real
:class:`~nexus_raft.consensus.log.store.LogStore` (the store a WitnessNode
uses), persisting each Ready the way the node driver does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    Message,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.storage import Store
from nexus_raft.witness import disk_bytes

CONF = ConfState(voters=frozenset({1, 2, 3}), witnesses=frozenset({3}))


def _open(path: Path, node_id: int = 3) -> tuple[Store, LogStore, Raft]:
    store = Store.open(path)
    log = LogStore(store, conf_state=CONF)
    return store, log, Raft(Config(id=node_id), log, random.Random(node_id))


def _persist(raft: Raft, log: LogStore) -> Sequence[Message]:
    """Handle one Ready like the node driver: persist, drop payloads, then hand out messages."""
    if not raft.has_ready():
        return ()
    rd = raft.ready()
    log.save(rd.hard_state, rd.entries, rd.snapshot)
    if rd.payload_floor is not None:
        log.drop_payloads(rd.payload_floor)
    raft.advance(rd)
    return rd.messages


def _vote(raft: Raft, log: LogStore, candidate: int, term: int, last: tuple[int, int]) -> bool:
    raft.step(VoteRequest(frm=candidate, to=3, term=term, last_log_index=last[0],
                          last_log_term=last[1]))
    answers = [m for m in _persist(raft, log) if isinstance(m, VoteResponse)]
    assert len(answers) == 1, answers
    assert answers[0].to == candidate
    return answers[0].granted


def test_witness_vote_and_term_survive_a_restart_no_double_vote(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store, log, raft = _open(path)
    assert raft.is_witness
    assert _vote(raft, log, candidate=1, term=5, last=(0, 0))
    store.close()

    # A crash-restart from the data directory: term and vote come back from disk.
    store, log, raft = _open(path)
    assert log.hard_state == HardState(term=5, vote=1, commit=0)
    assert (raft.term, raft.vote) == (5, 1)
    assert not _vote(raft, log, candidate=2, term=5, last=(0, 0)), "voted twice in term 5"
    assert _vote(raft, log, candidate=1, term=5, last=(0, 0)), "the same candidate may ask again"
    store.close()

    store, log, raft = _open(path)
    assert not _vote(raft, log, candidate=2, term=5, last=(0, 0))
    # A later term is a fresh vote.
    assert _vote(raft, log, candidate=2, term=6, last=(0, 0))
    assert log.hard_state.term == 6 and log.hard_state.vote == 2
    store.close()


def _entries(first: int, count: int, term: int, size: int) -> tuple[Entry, ...]:
    return tuple(Entry(i, term, EntryType.NORMAL, bytes([i % 251]) * size)
                 for i in range(first, first + count))


def test_payloads_sent_to_the_witness_are_dropped_at_the_floor(tmp_path: Path) -> None:
    """A full voter lagged, so the leader sent payloads; once the floor passes them they go."""
    store, log, raft = _open(tmp_path / "store")
    cc = ConfChange(ConfChangeType.ADD_VOTER, 4, b"127.0.0.1:7004")
    ents = (*_entries(1, 5, 2, 1000), Entry(6, 2, EntryType.CONF_CHANGE, cc.encode()),
            *_entries(7, 4, 2, 1000))
    raft.step(AppendRequest(frm=1, to=3, term=2, prev_index=0, prev_term=0, entries=ents,
                            commit=0, payload_floor=0))
    acks = [m for m in _persist(raft, log) if isinstance(m, AppendResponse)]
    assert acks and not acks[-1].reject and acks[-1].index == 10
    assert acks[-1].payload_index == 10  # it holds every payload it was sent
    assert all(e.data is not None for e in log.entries(1, 11))

    # The leader learns every full voter has 1..8: commit and floor move to 8.
    raft.step(Heartbeat(frm=1, to=3, term=2, commit=8, payload_floor=8))
    _persist(raft, log)
    assert log.payload_floor == 8
    kept = log.entries(1, 11)
    assert [e.data is None for e in kept[:5]] == [True] * 5
    assert kept[5].data == cc.encode(), "configuration entries keep their payload"
    assert [e.data is None for e in kept[6:8]] == [True, True]
    assert all(e.data is not None for e in kept[8:]), "entries above the floor keep payloads"
    assert [(e.index, e.term, e.type) for e in kept] == [(e.index, e.term, e.type) for e in ents]
    store.close()

    # Reopened, the floor and the metadata are all there.
    store, log, raft = _open(tmp_path / "store")
    assert log.payload_floor == 8 and log.last_index() == 10
    assert log.entries(1, 2)[0].data is None
    store.close()


def test_metadata_log_is_a_small_fraction_of_a_full_log(tmp_path: Path) -> None:
    """1,000 entries of 4 KiB: the witness (metadata only) stores < 10% of a full log."""
    full_store = Store.open(tmp_path / "full")
    wit_store = Store.open(tmp_path / "witness")
    full, wit = LogStore(full_store, conf_state=CONF), LogStore(wit_store, conf_state=CONF)
    for first in range(1, 1001, 50):
        batch = _entries(first, 50, 2, 4096)
        full.save(HardState(2, 1, first - 1), batch)
        wit.save(HardState(2, 1, first - 1), [e.metadata_only() for e in batch])
    full_store.close()
    wit_store.close()
    full_bytes, wit_bytes = disk_bytes(tmp_path / "full"), disk_bytes(tmp_path / "witness")
    assert full_bytes > 4_000_000
    assert wit_bytes < full_bytes // 10, (wit_bytes, full_bytes)
    # Per entry the witness holds a few dozen bytes.
    assert wit_bytes / 1000 < 64, wit_bytes
