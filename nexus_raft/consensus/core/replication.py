"""The leader: replication, commit, heartbeats, snapshots, transfer, ReadIndex.

Rules:
- Leader Append-Only: the leader only appends to its own log.
- Commit (§5.3, §5.4.2): an index commits when a majority of voters (the
  leader counted only once its own copy is persisted) match it, and its entry
  is of the current term; earlier entries commit with it.
- Payload rule, witness traffic, the payload floor and removals with a
  witness: payloads.py (the leader's witness rules, a mixin of this class).
- A witness leader accepts no proposals or reads; it replicates to the full
  voters up to its own end (``witness_end()``: in 2+1 its last payload
  index) and transfers leadership to the first one that reached it, at once.
  It sends learners no entries and skips a full voter it cannot supply (a
  payload it dropped, a snapshot): the full leader it hands over to serves
  them. It steps down only when no other full voter is left to serve.
- A leader whose own removal is appended keeps leading (without counting
  itself) until the removal commits, then steps down (thesis §4.2.2).
"""

from __future__ import annotations

import logging

from nexus_raft.consensus.core.log import InvariantViolation
from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    AppendResponse,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    MemberKind,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    Role,
    SnapshotRequest,
    TimeoutNow,
)
from nexus_raft.consensus.core.payloads import LeaderPayloads
from nexus_raft.consensus.core.progress import Progress, ProgressState
from nexus_raft.consensus.core.quorum import committed_index, majority
from nexus_raft.consensus.core.storage import LogCompacted

__all__ = ["Replication"]

log = logging.getLogger("nexus_raft.consensus.core")


class Replication(LeaderPayloads):
    """Leader behaviour (mixin of :class:`~nexus_raft.consensus.core.raft.Raft`)."""

    __slots__ = ()

    # --- becoming leader -------------------------------------------------------------

    def become_leader(self) -> None:
        """Take over: progress for every member, then an empty entry of this term."""
        self.reset(self.term)
        self.leader_id = self.id
        self.role = Role.LEADER
        self.sync_progress()
        for nid, pr in self.prs.items():
            # Check-quorum counts only members heard from during this leadership.
            pr.recent_active = nid == self.id
        me = self.prs.get(self.id)
        if me is not None:
            me.state = ProgressState.REPLICATE
        # Conservative: a change in the uncommitted tail may still be pending.
        self.pending_conf_index = self.log.last_index()
        self.append_entries([Entry(self.log.last_index() + 1, self.term, EntryType.NORMAL, b"")])
        log.info("node %d: leader in term %d", self.id, self.term)

    def append_entries(self, ents: list[Entry]) -> None:
        """Append this leader's new entries and schedule a broadcast."""
        self.log.append(ents)
        self.note_appended(ents)
        self.needs_bcast = True

    # --- sending ------------------------------------------------------------------------

    def bcast_append(self) -> None:
        """Send new entries (or just the commit index) to every member.

        A replicating voter or learner gets no commit-only append: the commit
        rides on its next append (an in-flight append's answer triggers one
        when there is more to send), else the leader's next tick sends it
        (``_top_up_commits``), so its apply lag stays within one tick while
        a write costs one append and one answer per member instead of two.
        A witness sent metadata only gets no commit-only append either: it
        applies nothing and holds no payload to drop, so its commit index and
        payload floor wait for the next append or heartbeat.
        """
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            lazy = pr.state is ProgressState.REPLICATE
            if pr.kind is MemberKind.WITNESS and not self.is_witness:
                self._update_payload_mode(pr)
                lazy = not pr.payload_mode and pr.state is ProgressState.REPLICATE
            if self.send_append(nid, send_if_empty=not lazy):
                # Pipeline the rest, as far as batching and the window allow.
                while self.send_append(nid, send_if_empty=False):
                    pass

    def send_append(self, to: int, send_if_empty: bool = True) -> bool:
        """Send one AppendRequest to ``to`` if flow control allows; True if sent."""
        pr = self.prs[to]
        if pr.kind is MemberKind.WITNESS and not self.is_witness:
            self._update_payload_mode(pr)
        if self.is_witness and (pr.kind is MemberKind.LEARNER or pr.unsupplied):
            return False  # a witness leader serves full voters only (``_skip_member``)
        if not send_if_empty and pr.next > self.log.last_index():
            return False  # nothing new: skip the log lookups (the pipelining loops end here)
        if pr.is_paused():
            return False
        cfg = self.config
        prev = pr.next - 1
        try:
            prev_term = self.log.term(prev)
            ents = self.log.entries(
                pr.next, pr.next + cfg.max_entries_per_msg, cfg.max_size_per_msg
            )
        except LogCompacted:
            return self._send_snapshot(to, pr)
        if ents and self.is_witness and ents[-1].index > self.witness_end():
            # A witness leader sends only up to its own end: its metadata-only
            # tail (and its own empty entry after it) stay behind; the transfer
            # happens at that end.
            end = self.witness_end()
            ents = [e for e in ents if e.index <= end]
        if not ents and not send_if_empty:
            return False
        if pr.kind is MemberKind.WITNESS:
            if self.is_witness or not pr.payload_mode:
                ents = [e.metadata_only() for e in ents]
        elif self.is_witness:
            for e in ents:
                if e.data is None:
                    return self._skip_member(to, pr, f"it holds no payload for entry {e.index}")
        # The follower commits this far: never more than the message carries,
        # so a follower can refuse a commit index beyond the entries sent.
        told = min(self.log.committed, prev + len(ents))
        self.send(
            AppendRequest(
                frm=self.id,
                to=to,
                term=self.term,
                prev_index=prev,
                prev_term=prev_term,
                entries=tuple(ents),
                commit=told,
                payload_floor=self.leader_payload_floor(),
            )
        )
        pr.appended_since_heartbeat = True
        if told > pr.commit_sent:
            pr.commit_sent = told
        if ents:
            pr.sent_entries(ents[-1].index, 0)
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        if self.is_witness:
            return self._skip_member(to, pr, "it needs a snapshot")
        snap = self.log.snapshot()
        if snap.index == 0:
            raise InvariantViolation("log compacted but no snapshot is available")
        pr.become_snapshot(snap.index)
        log.debug("node %d: sending snapshot %d to %d", self.id, snap.index, to)
        self.send(SnapshotRequest(frm=self.id, to=to, term=self.term, snapshot=snap))
        return True

    def bcast_heartbeat(self, context: bytes = b"") -> None:
        """Heartbeat every member; ``context`` confirms a ReadIndex round.

        Without a context, members sent an AppendRequest since the last round
        are skipped (the append did the heartbeat's job). If it was lost, the
        next round (nothing sent meanwhile: paused) heartbeats them.
        """
        floor = self.leader_payload_floor()
        committed = self.log.committed
        for nid, pr in self.prs.items():
            if nid != self.id:
                skip = pr.appended_since_heartbeat and not context
                pr.appended_since_heartbeat = False
                if skip:
                    continue
                told = min(pr.match, committed)
                self.send(
                    Heartbeat(
                        frm=self.id,
                        to=nid,
                        term=self.term,
                        commit=told,
                        payload_floor=floor,
                        context=context,
                    )
                )
                if told > pr.commit_sent:
                    pr.commit_sent = told

    # --- commit ---------------------------------------------------------------------------

    def maybe_commit(self) -> bool:
        """Advance the commit index if the quorum and payload rules allow; True if it moved."""
        prs = self.prs
        voters = self.conf_state.voters
        c = committed_index(voters, {v: prs[v].match for v in voters if v in prs})
        cap = self._payload_cap()
        if cap is not None and cap < c:
            c = cap
        lg = self.log
        if c <= lg.committed or lg.term_or_zero(c) != self.term:
            return False
        first_in_term = lg.term_or_zero(lg.committed) != self.term
        lg.commit_to(c)
        if first_in_term:
            waiting, self._waiting_reads = self._waiting_reads, []
            for ctx, requester in waiting:
                self.leader_read(ctx, requester)
        if self.id not in voters and lg.committed >= self.pending_conf_index:
            # Our own removal is committed: step down (thesis §4.2.2).
            log.info("node %d: removed from the configuration, stepping down", self.id)
            self.become_follower(self.term, NONE)
        return True

    # --- leader's step function -----------------------------------------------------------

    def step_leader(self, m: Message) -> None:
        """Messages of the current term while leading."""
        if isinstance(m, AppendResponse):
            pr = self.prs.get(m.frm)
            if pr is not None:
                self._handle_append_response(m, pr)
        elif isinstance(m, HeartbeatResponse):
            pr = self.prs.get(m.frm)
            if pr is None:
                return
            pr.recent_active = True
            pr.inactive_ticks = 0
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                # An append may have been lost: let one more go out; a gap makes
                # the follower reject it and the leader back off to probing.
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self.send_append(m.frm)
            if m.context:
                self._read_ack(m.frm, m.context)
            self._witness_try_transfer()
        elif isinstance(m, ReadIndexRequest):
            if m.frm not in self.prs:
                self._answer_read(0, m.context, m.frm, reject=True)
            else:
                self.leader_read(m.context, m.frm)
        elif isinstance(m, (AppendRequest, Heartbeat, SnapshotRequest)):
            raise InvariantViolation(
                f"node {self.id} leads term {self.term} but {m.frm} sent {type(m).__name__}"
            )
        # VoteResponse, ReadIndexResponse, TimeoutNow: stale, nothing to do.

    def _handle_append_response(self, m: AppendResponse, pr: Progress) -> None:
        pr.recent_active = True
        pr.inactive_ticks = 0
        if m.reject:
            hint = m.reject_hint
            if m.hint_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.hint_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        ack = m.index
        gap = False
        if pr.kind is MemberKind.WITNESS:
            if m.payload_index > pr.payload_match:
                pr.payload_match = m.payload_index
            # payload_index 0: a new member that does not know yet that it is a
            # witness (it has not received its ADD_WITNESS entry); it stores what it
            # is sent, but the leader does not count it as a payload holder.
            if pr.payload_mode and 0 < m.payload_index < ack:
                # It holds these entries without payloads (sent before the
                # switch, or a payload batch was lost): re-send from the gap.
                ack = m.payload_index
                gap = True
        updated = pr.maybe_update(ack)
        if gap:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
            elif pr.state is ProgressState.PROBE:
                # Re-probe from the gap; a duplicate answer to the same probe does
                # not trigger another send (probe_sent stays set until a heartbeat).
                pr.next = pr.match + 1
        elif pr.state is ProgressState.PROBE:
            if updated or ack == pr.match:
                pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if updated or pr.kind is MemberKind.WITNESS:
            # Only this member's match moved: the commit cannot move unless that
            # match is past it (a witness's payload cap is at most its match).
            if pr.match > self.log.committed and self.maybe_commit():
                self.needs_bcast = True
            if self.role is not Role.LEADER:
                return
            if m.frm == self.lead_transferee and pr.match >= self._transfer_end():
                self.send(TimeoutNow(frm=self.id, to=m.frm, term=self.term))
            self._witness_try_transfer()
        while self.send_append(m.frm, send_if_empty=False):
            pass

    # --- leadership transfer --------------------------------------------------------------

    def handle_transfer(self, target: int) -> None:
        """Start moving leadership to ``target`` (a full voter; validated by the caller)."""
        if target == self.id:
            return
        if self.lead_transferee == target:
            return
        self.lead_transferee = target
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        pr = self.prs[target]
        log.info("node %d: transferring leadership to %d", self.id, target)
        if pr.match >= self._transfer_end():
            self.send(TimeoutNow(frm=self.id, to=target, term=self.term))
        else:
            self.send_append(target)

    def _transfer_end(self) -> int:
        """How far a transfer target must match: the last index (a witness: its own end)."""
        return self.witness_end() if self.is_witness else self.log.last_index()

    def _witness_try_transfer(self) -> None:
        """A witness leader hands over to the first full voter that reached its own end."""
        if not self.is_witness or self.role is not Role.LEADER or self.lead_transferee:
            return
        end = self.witness_end()
        for nid in sorted(self.conf_state.full_voters):
            pr = self.prs.get(nid)
            if pr is not None and pr.match >= end:
                self.handle_transfer(nid)
                return

    def _skip_member(self, to: int, pr: Progress, why: str) -> bool:
        """A witness leader cannot supply full voter ``to``: leave it alone (returns False).

        Such a voter needs an entry at or below the payload floor (two full
        voters held it, so the witness dropped its payload) or below the
        witness's compacted log: another full voter holds it and will supply
        it once it leads. The witness leads only to bring some full voter up
        to its own end and hand over (``_witness_try_transfer``), so it gives
        up leading only when no other full voter is left to serve. Learners
        never get entries from a witness leader (``send_append``): they catch
        up from the full leader it hands over to.
        """
        pr.unsupplied = True
        log.info("node %d: witness leader skips %d: %s", self.id, to, why)
        others = [n for n in self.conf_state.full_voters if n != self.id]
        if all(n not in self.prs or self.prs[n].unsupplied for n in others):
            self._give_up_leading(f"{why} (member {to}) and no other full voter to serve")
        return False

    def _give_up_leading(self, why: str) -> None:
        log.warning("node %d: witness leader steps down: %s", self.id, why)
        self.cannot_lead = True
        self.become_follower(self.term, NONE)

    # --- ticks ----------------------------------------------------------------------------

    def tick_leader(self) -> None:
        """Heartbeats, check-quorum and the transfer timeout."""
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        last = self.log.last_index()
        for pr in self.prs.values():
            pr.inactive_ticks += 1
            if pr.match < last:
                pr.stall_ticks += 1
            else:
                pr.stall_ticks = 0
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                if not self._quorum_active():
                    log.info("node %d: lost its quorum, stepping down", self.id)
                    self.become_follower(self.term, NONE)
                    return
                for nid, pr in self.prs.items():
                    pr.recent_active = nid == self.id
            if self.lead_transferee:
                log.info(
                    "node %d: leadership transfer to %d timed out", self.id, self.lead_transferee
                )
                self.lead_transferee = NONE
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat(self.read_only.last_pending_context() or b"")
        self._top_up_commits()
        if self.conf_state.witnesses and not self.is_witness:
            self._refresh_witnesses()
        self._witness_try_transfer()

    def _top_up_commits(self) -> None:
        """Send the commit index to members that apply entries and have not been told it.

        ``bcast_append`` sends no commit-only append to a replicating member;
        this bounds such a member's apply lag by one tick when no append went
        out since. It is an empty append (flow control applies: a paused
        member has answers on the way, which send more). Witnesses wait for
        heartbeats: they apply nothing.
        """
        me = self.id
        committed = self.log.committed
        for nid, pr in self.prs.items():
            if nid == me or pr.kind is MemberKind.WITNESS:
                continue
            if pr.commit_sent < min(pr.match, committed):
                self.send_append(nid)

    def _refresh_witnesses(self) -> None:
        """Switch witnesses to payloads as soon as a full voter starts lagging."""
        for nid in self.conf_state.witnesses:
            pr = self.prs.get(nid)
            if pr is None or pr.payload_mode == (not self.full_voters_healthy()):
                continue
            self._update_payload_mode(pr)
            if pr.next <= self.log.last_index():
                self.send_append(nid)

    def _quorum_active(self) -> bool:
        voters = self.conf_state.voters
        active = sum(
            1 for v in voters if v == self.id or (v in self.prs and self.prs[v].recent_active)
        )
        return active >= majority(len(voters))

    # --- ReadIndex ------------------------------------------------------------------------

    def leader_read(self, context: bytes, requester: int) -> None:
        """Serve a read once leadership is confirmed by a heartbeat quorum."""
        if self.is_witness:
            self._answer_read(0, context, requester, reject=True)
            return
        lg = self.log
        if lg.term_or_zero(lg.committed) != self.term:
            # Our commit index may be stale until an entry of this term commits.
            self._waiting_reads.append((context, requester))
            return
        voters = self.conf_state.voters
        if voters == {self.id}:
            self._answer_read(lg.committed, context, requester)
            return
        if self.read_only.add_request(lg.committed, context, requester):
            self.read_only.recv_ack(self.id, context)
            self.bcast_heartbeat(context)

    def _read_ack(self, voter: int, context: bytes) -> None:
        if self.read_only.recv_ack(voter, context) is None:
            return
        if not self.read_only.confirmed(context, self.conf_state.voters):
            return
        for p in self.read_only.advance(context):
            for requester in p.requesters:
                self._answer_read(p.index, p.context, requester)

    def _answer_read(
        self, index: int, context: bytes, requester: int, reject: bool = False
    ) -> None:
        if requester == self.id:
            if reject:
                self.dropped_reads.append(context)
            else:
                self.read_states.append(ReadState(index, context))
        else:
            self.send(
                ReadIndexResponse(
                    frm=self.id,
                    to=requester,
                    term=self.term,
                    index=index,
                    context=context,
                    reject=reject,
                )
            )
