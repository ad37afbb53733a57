"""Core messages <-> the transport's protobuf messages.

This is the only module where :mod:`nexus_raft.consensus.core` values meet the
generated protobuf classes. Everything else in the node layer speaks core
messages; the transport speaks protobuf.

Directions:
- ``*_to_pb``: a core message this node sends -> the protobuf request/response.
- ``*_from_pb``: a protobuf message received from ``peer`` -> the core message,
  addressed to ``local`` (this node's id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMeta,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.transport._generated import raft_pb2 as pb

__all__ = [
    "append_from_pb",
    "append_response_from_pb",
    "append_response_to_pb",
    "append_to_pb",
    "conf_state_from_pb",
    "entries_from_pb",
    "entries_to_pb",
    "pb",
    "read_index_from_pb",
    "read_index_response_from_pb",
    "read_index_response_to_pb",
    "read_index_to_pb",
    "snapshot_ack_to_pb",
    "snapshot_from_pb",
    "snapshot_to_pb",
    "timeout_now_from_pb",
    "timeout_now_to_pb",
    "vote_from_pb",
    "vote_response_from_pb",
    "vote_response_to_pb",
    "vote_to_pb",
]

_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}
_NORMAL = EntryType.NORMAL
_PB_TYPES = {EntryType.NORMAL: pb.NORMAL, EntryType.CONF_CHANGE: pb.CONF_CHANGE}


# --- entries -----------------------------------------------------------------------


def entries_to_pb(entries: Iterable[Entry]) -> list[pb.Entry]:
    """Core entries -> protobuf entries (``has_data`` False for a withheld payload)."""
    out: list[pb.Entry] = []
    make = pb.Entry
    for e in entries:
        if e.data is None:
            out.append(make(index=e.index, term=e.term, type=_PB_TYPES[e.type], has_data=False))
        else:
            out.append(
                make(index=e.index, term=e.term, type=_PB_TYPES[e.type], data=e.data, has_data=True)
            )
    return out


def _entry_type(e: pb.Entry) -> EntryType:
    """The core type of a non-NORMAL protobuf entry; ValueError when it cannot be one.

    The core decodes configuration entries when it appends them and takes a
    malformed one as a bug (an exception that stops the driver), so a peer's
    configuration entry must carry a payload that decodes (found by
    tests/fuzz/test_wire.py).
    """
    t = _TYPES.get(e.type)
    if t is None:
        raise ValueError(f"entry {e.index} has unknown type {e.type}")
    if t is EntryType.CONF_CHANGE:
        if not e.has_data:
            raise ValueError(f"configuration entry {e.index} comes without its payload")
        ConfChange.decode(e.data)  # ValueError when malformed
    return t


def entries_from_pb(entries: Sequence[pb.Entry]) -> tuple[Entry, ...]:
    """Protobuf entries -> core entries; ValueError for an unknown type or a malformed
    configuration entry (the peer handler refuses the message as malformed)."""
    return tuple(
        Entry(e.index, e.term, _entry_type(e) if e.type else _NORMAL,
              e.data if e.has_data else None)
        for e in entries
    )


# --- votes -------------------------------------------------------------------------


def vote_to_pb(m: VoteRequest, cluster_id: str) -> pb.VoteRequest:
    """A core VoteRequest (or pre-vote) -> protobuf."""
    return pb.VoteRequest(
        cluster_id=cluster_id,
        term=m.term,
        candidate_id=m.frm,
        to=m.to,
        last_log_index=m.last_log_index,
        last_log_term=m.last_log_term,
        pre_vote=m.pre_vote,
        transfer=m.transfer,
    )


def vote_from_pb(r: pb.VoteRequest, local: int) -> VoteRequest:
    """A received protobuf VoteRequest -> core."""
    return VoteRequest(
        frm=r.candidate_id,
        to=local,
        term=r.term,
        last_log_index=r.last_log_index,
        last_log_term=r.last_log_term,
        pre_vote=r.pre_vote,
        transfer=r.transfer,
    )


def vote_response_to_pb(m: VoteResponse) -> pb.VoteResponse:
    """The core's VoteResponse -> the protobuf answer of RequestVote."""
    return pb.VoteResponse(term=m.term, vote_granted=m.granted, from_id=m.frm, pre_vote=m.pre_vote)


def vote_response_from_pb(r: pb.VoteResponse, peer: int, local: int) -> VoteResponse:
    """A peer's protobuf VoteResponse -> core."""
    return VoteResponse(
        frm=peer, to=local, term=r.term, granted=r.vote_granted, pre_vote=r.pre_vote
    )


# --- appends and heartbeats ----------------------------------------------------------


def append_to_pb(m: AppendRequest | Heartbeat, cluster_id: str) -> pb.AppendRequest:
    """A core AppendRequest or Heartbeat -> one protobuf AppendRequest (``heartbeat`` flag)."""
    if isinstance(m, Heartbeat):
        return pb.AppendRequest(
            cluster_id=cluster_id,
            term=m.term,
            leader_id=m.frm,
            to=m.to,
            leader_commit=m.commit,
            payload_floor=m.payload_floor,
            heartbeat=True,
            context=m.context,
        )
    req = pb.AppendRequest(
        cluster_id=cluster_id,
        term=m.term,
        leader_id=m.frm,
        to=m.to,
        prev_log_index=m.prev_index,
        prev_log_term=m.prev_term,
        leader_commit=m.commit,
        payload_floor=m.payload_floor,
    )
    # Entries are filled in place: building each pb.Entry with keyword
    # arguments and then copying the list into the request costs several
    # times more (this runs for every append a leader sends).
    add = req.entries.add
    types = _PB_TYPES
    for e in m.entries:
        x = add()
        x.index = e.index
        x.term = e.term
        if e.type is not _NORMAL:
            x.type = types[e.type]
        data = e.data
        if data is not None:
            x.has_data = True
            if data:
                x.data = data
    return req


def append_from_pb(r: pb.AppendRequest, local: int) -> AppendRequest | Heartbeat:
    """A received protobuf AppendRequest -> core AppendRequest or Heartbeat."""
    if r.heartbeat:
        return Heartbeat(
            frm=r.leader_id,
            to=local,
            term=r.term,
            commit=r.leader_commit,
            payload_floor=r.payload_floor,
            context=r.context,
        )
    return AppendRequest(
        frm=r.leader_id,
        to=local,
        term=r.term,
        prev_index=r.prev_log_index,
        prev_term=r.prev_log_term,
        entries=entries_from_pb(r.entries),
        commit=r.leader_commit,
        payload_floor=r.payload_floor,
    )


def append_response_to_pb(m: AppendResponse | HeartbeatResponse) -> pb.AppendResponse:
    """The core's answer to an append or heartbeat -> protobuf."""
    if isinstance(m, HeartbeatResponse):
        return pb.AppendResponse(term=m.term, from_id=m.frm, heartbeat=True, context=m.context)
    return pb.AppendResponse(
        term=m.term,
        from_id=m.frm,
        reject=m.reject,
        index=m.index,
        reject_hint=m.reject_hint,
        hint_term=m.hint_term,
        payload_index=m.payload_index,
    )


def append_response_from_pb(
    r: pb.AppendResponse, peer: int, local: int
) -> AppendResponse | HeartbeatResponse:
    """A peer's protobuf AppendResponse -> core AppendResponse or HeartbeatResponse."""
    if r.heartbeat:
        return HeartbeatResponse(frm=peer, to=local, term=r.term, context=r.context)
    return AppendResponse(
        frm=peer,
        to=local,
        term=r.term,
        index=r.index,
        reject=r.reject,
        reject_hint=r.reject_hint,
        hint_term=r.hint_term,
        payload_index=r.payload_index,
    )


# --- snapshots -------------------------------------------------------------------------


def conf_state_from_pb(r: pb.SnapshotMeta) -> ConfState:
    """The configuration carried by a protobuf SnapshotMeta."""
    return ConfState(frozenset(r.voters), frozenset(r.learners), frozenset(r.witnesses))


def snapshot_to_pb(m: SnapshotRequest, cluster_id: str) -> pb.SnapshotMeta:
    """A core SnapshotRequest -> the protobuf meta that opens an InstallSnapshot stream."""
    cs = m.snapshot.conf_state
    return pb.SnapshotMeta(
        cluster_id=cluster_id,
        term=m.term,
        leader_id=m.frm,
        to=m.to,
        index=m.snapshot.index,
        last_term=m.snapshot.term,
        voters=sorted(cs.voters),
        learners=sorted(cs.learners),
        witnesses=sorted(cs.witnesses),
    )


def snapshot_from_pb(r: pb.SnapshotMeta, local: int) -> SnapshotRequest:
    """A received protobuf SnapshotMeta -> core SnapshotRequest."""
    meta = SnapshotMeta(r.index, r.last_term, conf_state_from_pb(r))
    return SnapshotRequest(frm=r.leader_id, to=local, term=r.term, snapshot=meta)


def snapshot_ack_to_pb(m: AppendResponse, reason: str = "") -> pb.SnapshotAck:
    """The core's answer to a SnapshotRequest -> the protobuf ack of InstallSnapshot."""
    if m.reject:
        return pb.SnapshotAck(
            term=m.term, accepted=False, index=m.index, reason=reason or "snapshot refused"
        )
    return pb.SnapshotAck(term=m.term, accepted=True, index=m.index)


# --- leadership transfer and reads -------------------------------------------------------


def timeout_now_to_pb(m: TimeoutNow, cluster_id: str) -> pb.TimeoutNowRequest:
    """A core TimeoutNow -> protobuf."""
    return pb.TimeoutNowRequest(cluster_id=cluster_id, term=m.term, leader_id=m.frm, to=m.to)


def timeout_now_from_pb(r: pb.TimeoutNowRequest, local: int) -> TimeoutNow:
    """A received protobuf TimeoutNowRequest -> core."""
    return TimeoutNow(frm=r.leader_id, to=local, term=r.term)


def read_index_to_pb(m: ReadIndexRequest, cluster_id: str) -> pb.ReadIndexRequest:
    """A core ReadIndexRequest (follower -> leader) -> protobuf."""
    return pb.ReadIndexRequest(
        cluster_id=cluster_id, term=m.term, from_id=m.frm, to=m.to, context=m.context
    )


def read_index_from_pb(r: pb.ReadIndexRequest, local: int) -> ReadIndexRequest:
    """A received protobuf ReadIndexRequest -> core."""
    return ReadIndexRequest(frm=r.from_id, to=local, term=r.term, context=r.context)


def read_index_response_to_pb(m: ReadIndexResponse) -> pb.ReadIndexResponse:
    """The core's ReadIndexResponse -> protobuf."""
    return pb.ReadIndexResponse(
        term=m.term, index=m.index, context=m.context, reject=m.reject, from_id=m.frm
    )


def read_index_response_from_pb(
    r: pb.ReadIndexResponse, peer: int, local: int
) -> ReadIndexResponse:
    """The leader's protobuf ReadIndexResponse -> core."""
    return ReadIndexResponse(
        frm=peer, to=local, term=r.term, index=r.index, context=r.context, reject=r.reject
    )
