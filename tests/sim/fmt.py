"""Compact one-line renderings of messages and configurations for traces."""

from __future__ import annotations

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    ConfState,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    VoteRequest,
    VoteResponse,
)


def fmt_conf(cs: ConfState) -> str:
    """``voters[1,2] witnesses[3] learners[4]`` (full voters listed apart from witnesses)."""
    v = ",".join(str(i) for i in sorted(cs.voters - cs.witnesses))
    w = ",".join(str(i) for i in sorted(cs.witnesses))
    lrn = ",".join(str(i) for i in sorted(cs.learners))
    return f"voters[{v}] witnesses[{w}] learners[{lrn}]"


def fmt_msg(m: Message) -> str:
    """``AppendRequest 1->2 t3 prev=4/3 ents=5..6 commit=4 floor=0`` and the like."""
    extra = ""
    if isinstance(m, AppendRequest):
        ents = m.entries
        span = f"{ents[0].index}..{ents[-1].index}" if ents else "-"
        extra = (
            f" prev={m.prev_index}/{m.prev_term} ents={span} commit={m.commit}"
            f" floor={m.payload_floor}"
        )
    elif isinstance(m, AppendResponse):
        extra = f" index={m.index} reject={m.reject} hint={m.reject_hint}/{m.hint_term}"
    elif isinstance(m, VoteRequest):
        extra = (
            f" last={m.last_log_index}/{m.last_log_term} pre={m.pre_vote} transfer={m.transfer}"
        )
    elif isinstance(m, VoteResponse):
        extra = f" granted={m.granted} pre={m.pre_vote}"
    elif isinstance(m, SnapshotRequest):
        extra = f" snap={m.snapshot.index}/{m.snapshot.term}"
    elif isinstance(m, Heartbeat):
        extra = f" commit={m.commit} floor={m.payload_floor} ctx={m.context!r}"
    elif isinstance(m, (ReadIndexRequest, HeartbeatResponse)):
        extra = f" ctx={m.context!r}"
    elif isinstance(m, ReadIndexResponse):
        extra = f" index={m.index} ctx={m.context!r} reject={m.reject}"
    return f"{type(m).__name__} {m.frm}->{m.to} t{m.term}{extra}"
