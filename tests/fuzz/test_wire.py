"""Peer messages from protobuf (consensus/node/wire.py): garbage in, a clear refusal out.

The path is the one ``PeerHandler`` (consensus/node/server.py) runs on each
request: the protobuf parser (``DecodeError`` is its documented refusal; gRPC
answers it before the handler), the ``*_from_pb`` mapping (``ValueError`` or
``KeyError``, which the handler turns into ``PeerRefused``), the node's
boundary checks (consensus/node/guard.py), and then the core. Arbitrary bytes
and structured messages with damaged fields (unknown entry types, gaps in
indexes, terms out of order, undecodable configuration entries, impossible
configurations) go in; whatever passes the boundary is stepped into a real
follower core, which may refuse it only with a ``NexusRaftError``: any other
exception would stop the node's driver.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfState,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.guard import (
    append_refusal,
    snapshot_refusal,
    timeout_now_refusal,
    vote_refusal,
)
from nexus_raft.consensus.node.wire import pb
from nexus_raft.errors import NexusRaftError
from tests.fuzz.settings import fuzz

LOCAL = 1
PEER = 2

DECODERS: list[tuple[Any, Callable[[Any], Message], tuple[type, ...]]] = [
    (pb.VoteRequest, lambda r: wire.vote_from_pb(r, LOCAL), (VoteRequest,)),
    (pb.VoteResponse, lambda r: wire.vote_response_from_pb(r, PEER, LOCAL), (VoteResponse,)),
    (pb.AppendRequest, lambda r: wire.append_from_pb(r, LOCAL), (AppendRequest, Heartbeat)),
    (pb.AppendResponse, lambda r: wire.append_response_from_pb(r, PEER, LOCAL),
     (AppendResponse, HeartbeatResponse)),
    (pb.SnapshotMeta, lambda r: wire.snapshot_from_pb(r, LOCAL), (SnapshotRequest,)),
    (pb.TimeoutNowRequest, lambda r: wire.timeout_now_from_pb(r, LOCAL), (TimeoutNow,)),
    (pb.ReadIndexRequest, lambda r: wire.read_index_from_pb(r, LOCAL), (ReadIndexRequest,)),
    (pb.ReadIndexResponse, lambda r: wire.read_index_response_from_pb(r, PEER, LOCAL),
     (ReadIndexResponse,)),
]


def follower() -> Raft:
    """A follower (node 1 of {1, 2, 3}) with a short log, to step fuzzed messages into."""
    storage = MemoryStorage(ConfState(frozenset({1, 2, 3})))
    r = Raft(Config(id=LOCAL, election_tick=10), storage, random.Random(0))
    r.step(wire.append_from_pb(wire.append_to_pb(AppendRequest(
        frm=PEER, to=LOCAL, term=1, prev_index=0, prev_term=0,
        entries=tuple(wire.entries_from_pb(wire.entries_to_pb([
            _entry(1, 1), _entry(2, 1), _entry(3, 1)]))), commit=1), "c"), LOCAL))
    _drain(r, storage)
    return r


def _entry(index: int, term: int) -> Any:
    from nexus_raft.consensus.core.messages import Entry

    return Entry(index, term, EntryType.NORMAL, b"x%d" % index)


def _drain(r: Raft, storage: MemoryStorage) -> None:
    """Persist and acknowledge every Ready, as a driver would."""
    for _ in range(10):
        if not r.has_ready():
            return
        rd = r.ready()
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        r.advance(rd)


def _member(nid: int) -> bool:
    return nid in (1, 2, 3)


def _refused(m: Message) -> bool:
    """The guard's verdict for a request the handler checks (responses are not checked)."""
    current = 1
    if isinstance(m, VoteRequest):
        return vote_refusal(m, current, _member) is not None
    if isinstance(m, (AppendRequest, Heartbeat)):
        return append_refusal(m, current, _member) is not None
    if isinstance(m, SnapshotRequest):
        return snapshot_refusal(m, current, _member) is not None
    if isinstance(m, TimeoutNow):
        return timeout_now_refusal(m.frm, m.term, current, PEER, _member, me=LOCAL) is not None
    return False


def _decode(i: int, msg: Any) -> Message | None:
    """The handler's path up to the core: the message to step, or None if refused."""
    _, dec, want = DECODERS[i]
    try:
        out = dec(msg)
    except (ValueError, KeyError):
        return None  # PeerHandler answers PeerRefused("malformed request: ...")
    assert isinstance(out, want), f"{type(out).__name__} is not one of {want}"
    return None if _refused(out) else out


def _step(out: Message) -> None:
    r = follower()
    try:
        r.step(out)
        _drain(r, r.log.storage)  # type: ignore[arg-type]
    except NexusRaftError:
        pass


@fuzz
@given(st.integers(0, len(DECODERS) - 1), st.binary(max_size=400))
def test_peer_message_from_arbitrary_bytes(i: int, raw: bytes) -> None:
    cls = DECODERS[i][0]
    try:
        msg = cls.FromString(raw)
    except DecodeError:
        return
    out = _decode(i, msg)
    if out is not None:
        _step(out)


u64 = st.integers(0, 2**64 - 1)
small = st.integers(0, 12)
pb_entries = st.lists(
    st.builds(
        pb.Entry,
        index=st.one_of(small, u64),
        term=st.one_of(small, u64),
        type=st.integers(0, 4),
        data=st.one_of(
            st.binary(max_size=24),
            # Conf change payloads: a type byte (valid or not), a node id, a context.
            st.builds(lambda t, n, c: bytes([t]) + n + c,
                      st.integers(0, 5), st.binary(min_size=8, max_size=8), st.binary(max_size=4)),
        ),
        has_data=st.booleans(),
    ),
    max_size=6,
)


@fuzz
@given(
    term=small, leader=st.integers(0, 4), prev_index=small, prev_term=small,
    entries=pb_entries, commit=st.one_of(small, u64), floor=small, heartbeat=st.booleans(),
)
def test_append_request_with_damaged_fields(
    term: int, leader: int, prev_index: int, prev_term: int, entries: list[Any], commit: int,
    floor: int, heartbeat: bool,
) -> None:
    msg = pb.AppendRequest(
        cluster_id="c", term=term, leader_id=leader, to=LOCAL, prev_log_index=prev_index,
        prev_log_term=prev_term, entries=entries, leader_commit=commit, payload_floor=floor,
        heartbeat=heartbeat,
    )
    out = _decode(2, msg)
    if out is None:
        return
    if isinstance(out, AppendRequest):
        ents = out.entries
        for k, e in enumerate(ents):
            assert e.index == out.prev_index + 1 + k, "accepted entries with a gap"
            assert e.type in (EntryType.NORMAL, EntryType.CONF_CHANGE)
            if e.type is EntryType.CONF_CHANGE:
                assert e.data is not None
                ConfChange.decode(e.data)  # must not raise: it was validated
    _step(out)


@st.composite
def near_valid_appends(draw: st.DrawFn) -> Any:
    """Appends that mostly pass the boundary checks and match the follower's log
    (entries 1..3 of term 1), with one field damaged at a time: they reach the core."""
    prev_index = draw(st.integers(0, 4))
    prev_term = draw(st.sampled_from((0, 1, 1, 2)))
    term = draw(st.sampled_from((1, 1, 2)))
    n = draw(st.integers(0, 4))
    ents = []
    for k in range(n):
        kind = draw(st.sampled_from((0, 0, 1, 1, 2, 9)))
        if kind == 1:
            data = bytes([draw(st.integers(0, 4))]) + draw(st.binary(min_size=0, max_size=10))
        else:
            data = draw(st.binary(max_size=8))
        ents.append(pb.Entry(index=prev_index + 1 + k + draw(st.sampled_from((0, 0, 0, 1))),
                             term=max(prev_term, draw(st.integers(0, term))), type=kind,
                             data=data, has_data=draw(st.sampled_from((True, True, False)))))
    commit = draw(st.integers(0, prev_index + n))
    return pb.AppendRequest(cluster_id="c", term=term, leader_id=PEER, to=LOCAL,
                            prev_log_index=prev_index, prev_log_term=prev_term, entries=ents,
                            leader_commit=commit)


@fuzz
@given(near_valid_appends())
def test_append_that_reaches_the_core(msg: Any) -> None:
    out = _decode(2, msg)
    if out is not None:
        _step(out)


def test_conf_entry_with_unknown_change_type_is_refused_before_the_core() -> None:
    """Found by the fuzzer: a configuration entry whose change type is unknown (7) passed
    the mapping and the boundary checks and raised ValueError inside the core's
    ``note_appended``, which stops the node's driver. Now the mapping refuses it."""
    msg = pb.AppendRequest(
        cluster_id="c", term=1, leader_id=PEER, to=LOCAL, prev_log_index=3, prev_log_term=1,
        entries=[pb.Entry(index=4, term=1, type=1, data=b"\x07" + bytes(8), has_data=True)],
        leader_commit=4,
    )
    assert _decode(2, msg) is None


def test_conf_entry_without_payload_is_refused_before_the_core() -> None:
    """A configuration entry always carries its payload (even to a witness)."""
    msg = pb.AppendRequest(
        cluster_id="c", term=1, leader_id=PEER, to=LOCAL, prev_log_index=3, prev_log_term=1,
        entries=[pb.Entry(index=4, term=1, type=1, has_data=False)], leader_commit=3,
    )
    assert _decode(2, msg) is None


ids = st.lists(st.integers(0, 6), max_size=4)


@fuzz
@given(term=small, leader=st.integers(0, 4), index=st.one_of(small, u64), last_term=small,
       voters=ids, learners=ids, witnesses=ids)
def test_snapshot_meta_with_impossible_configurations(
    term: int, leader: int, index: int, last_term: int, voters: list[int], learners: list[int],
    witnesses: list[int],
) -> None:
    msg = pb.SnapshotMeta(cluster_id="c", term=term, leader_id=leader, to=LOCAL, index=index,
                          last_term=last_term, voters=voters, learners=learners,
                          witnesses=witnesses)
    out = _decode(4, msg)
    if out is not None:
        _step(out)


