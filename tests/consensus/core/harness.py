"""An in-memory network of Raft cores for unit and scenario tests.

Messages queue in one FIFO list; nothing moves unless a test delivers it.
Partitions drop messages at delivery time. Each node has a MemoryStorage the
harness writes every Ready into before the Ready's messages are queued
(persist before send), and a list of applied entries.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from nexus_raft.consensus.core import (
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    Raft,
    ReadState,
    Ready,
)
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    ConfChange,
    Heartbeat,
    HeartbeatResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)


def fmt_entry(e: Entry) -> str:
    """``index/term data`` with payloads shown briefly."""
    if e.type is EntryType.CONF_CHANGE and e.data is not None:
        cc = ConfChange.decode(e.data)
        return f"{e.index}/{e.term} conf:{cc.type.name.lower()}({cc.node_id})"
    if e.data is None:
        return f"{e.index}/{e.term} <meta>"
    text = e.data.decode("utf-8", "replace")
    if len(text) > 12:
        text = text[:9] + "..."
    return f'{e.index}/{e.term} "{text}"'


def fmt_entries(ents: Iterable[Entry]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in ents) + "]"


def fmt_msg(m: Message) -> str:
    """One line per message, etcd-style."""
    head = f"{m.frm}->{m.to} "
    if isinstance(m, VoteRequest):
        kind = "PreVote" if m.pre_vote else "Vote"
        extra = " transfer" if m.transfer else ""
        return head + f"{kind} t{m.term} last={m.last_log_index}/{m.last_log_term}{extra}"
    if isinstance(m, VoteResponse):
        kind = "PreVoteResp" if m.pre_vote else "VoteResp"
        return head + f"{kind} t{m.term} {'granted' if m.granted else 'rejected'}"
    if isinstance(m, AppendRequest):
        s = head + f"App t{m.term} prev={m.prev_index}/{m.prev_term} commit={m.commit}"
        if m.payload_floor:
            s += f" floor={m.payload_floor}"
        return s + " " + fmt_entries(m.entries)
    if isinstance(m, AppendResponse):
        s = head + f"AppResp t{m.term} index={m.index}"
        if m.reject:
            s += f" rejected hint={m.reject_hint}/{m.hint_term}"
        if m.payload_index:
            s += f" payload={m.payload_index}"
        return s
    if isinstance(m, Heartbeat):
        s = head + f"Heartbeat t{m.term} commit={m.commit}"
        if m.payload_floor:
            s += f" floor={m.payload_floor}"
        if m.context:
            s += f" ctx={m.context.decode()}"
        return s
    if isinstance(m, HeartbeatResponse):
        s = head + f"HeartbeatResp t{m.term}"
        return s + (f" ctx={m.context.decode()}" if m.context else "")
    if isinstance(m, SnapshotRequest):
        sn = m.snapshot
        return (
            head
            + f"Snapshot t{m.term} index={sn.index}/{sn.term} voters={sorted(sn.conf_state.voters)}"
        )
    if isinstance(m, TimeoutNow):
        return head + f"TimeoutNow t{m.term}"
    if isinstance(m, ReadIndexRequest):
        return head + f"ReadIndex t{m.term} ctx={m.context.decode()}"
    assert isinstance(m, ReadIndexResponse)
    s = head + f"ReadIndexResp t{m.term} index={m.index} ctx={m.context.decode()}"
    return s + (" rejected" if m.reject else "")


@dataclass
class NodeBox:
    """One node of the harness: its core, its storage and what it applied."""

    raft: Raft
    storage: MemoryStorage
    config: Config
    applied: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    dropped_reads: list[bytes] = field(default_factory=list)


class Network:
    """Nodes plus a FIFO of in-flight messages."""

    def __init__(self) -> None:
        self.nodes: dict[int, NodeBox] = {}
        self.queue: list[Message] = []
        self.groups: list[set[int]] | None = None  # partition: messages cross no group boundary
        self.cut: set[tuple[int, int]] = set()

    # --- setup ---------------------------------------------------------------------

    def add_node(self, nid: int, cs: ConfState, **cfg: int | bool) -> NodeBox:
        config = Config(id=nid, **cfg)  # type: ignore[arg-type]
        storage = MemoryStorage(cs)
        box = NodeBox(Raft(config, storage, random.Random(nid)), storage, config)
        self.nodes[nid] = box
        return box

    def restart(self, nid: int) -> None:
        """Crash and restart ``nid``: only what its storage holds survives."""
        box = self.nodes[nid]
        applied = box.applied[-1].index if box.applied else 0
        applied = max(applied, box.storage.snapshot().index)
        cfg = Config(
            id=nid,
            election_tick=box.config.election_tick,
            heartbeat_tick=box.config.heartbeat_tick,
            max_size_per_msg=box.config.max_size_per_msg,
            max_entries_per_msg=box.config.max_entries_per_msg,
            max_inflight_msgs=box.config.max_inflight_msgs,
            pre_vote=box.config.pre_vote,
            check_quorum=box.config.check_quorum,
            applied=min(applied, box.storage.hard_state.commit),
        )
        box.raft = Raft(cfg, box.storage, random.Random(nid * 1000 + 1))
        box.config = cfg
        self.queue = [m for m in self.queue if m.to != nid and m.frm != nid]

    def raft(self, nid: int) -> Raft:
        return self.nodes[nid].raft

    # --- Ready handling --------------------------------------------------------------

    def process_ready(self, nid: int) -> Ready | None:
        """Persist, queue messages, apply, advance; returns the Ready handled."""
        box = self.nodes[nid]
        r = box.raft
        if not r.has_ready():
            return None
        rd = r.ready()
        st = box.storage
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        if rd.payload_floor is not None:
            st.drop_payloads(rd.payload_floor)
        self.queue.extend(rd.messages)
        box.applied.extend(rd.committed_entries)
        box.read_states.extend(rd.read_states)
        box.dropped_reads.extend(rd.dropped_reads)
        r.advance(rd)
        return rd

    def blocked(self, m: Message) -> bool:
        if (m.frm, m.to) in self.cut:
            return True
        if self.groups is None:
            return False
        for g in self.groups:
            if m.frm in g:
                return m.to not in g
        return True

    def deliver(self, to: Iterable[int] | None = None, drop: Iterable[int] = ()) -> list[str]:
        """Deliver (or drop) queued messages addressed to ``to`` (all when None)."""
        targets = set(to) if to is not None else None
        dropped = set(drop)
        out: list[str] = []
        keep: list[Message] = []
        batch, self.queue = self.queue, []
        for m in batch:
            if targets is not None and m.to not in targets and m.to not in dropped:
                keep.append(m)
                continue
            if m.to in dropped or self.blocked(m) or m.to not in self.nodes:
                out.append(f"  dropped {fmt_msg(m)}")
                continue
            out.append(f"  {fmt_msg(m)}")
            self.nodes[m.to].raft.step(m)
        self.queue = keep + self.queue
        return out

    def stabilize(self, ids: Iterable[int] | None = None, limit: int = 10_000) -> list[str]:
        """Process readies and deliver messages until nothing moves."""
        scope = sorted(ids) if ids is not None else sorted(self.nodes)
        out: list[str] = []
        for _ in range(limit):
            moved = False
            for nid in scope:
                rd = self.process_ready(nid)
                if rd is not None:
                    moved = True
                    out.extend(fmt_ready(nid, rd))
            pending = [m for m in self.queue if m.to in scope]
            if pending:
                moved = True
                out.append("> delivering")
                out.extend(self.deliver(scope))
            if not moved:
                return out
        raise AssertionError("network did not stabilize")

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].raft.tick()

    def elect(self, nid: int) -> None:
        """Campaign ``nid`` and let the cluster settle (helper for unit tests)."""
        self.raft(nid).campaign()
        self.stabilize()


def fmt_ready(nid: int, rd: Ready) -> list[str]:
    """Compact, stable rendering of one Ready."""
    out = [f"> {nid} ready"]
    if rd.soft_state is not None:
        out.append(f"  soft: leader={rd.soft_state.leader_id} role={rd.soft_state.role.value}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        out.append(f"  hard: term={hs.term} vote={hs.vote} commit={hs.commit}")
    if rd.snapshot is not None:
        s = rd.snapshot
        out.append(f"  snapshot: {s.index}/{s.term} voters={sorted(s.conf_state.voters)}")
    if rd.entries:
        out.append(f"  entries: {fmt_entries(rd.entries)}")
    if rd.committed_entries:
        out.append(f"  committed: {fmt_entries(rd.committed_entries)}")
    if rd.payload_floor is not None:
        out.append(f"  payload_floor: {rd.payload_floor}")
    for rs in rd.read_states:
        out.append(f"  read_state: index={rs.index} ctx={rs.context.decode()}")
    for ctx in rd.dropped_reads:
        out.append(f"  dropped_read: ctx={ctx.decode()}")
    for m in rd.messages:
        out.append(f"  send {fmt_msg(m)}")
    return out
