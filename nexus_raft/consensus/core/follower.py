"""Followers, learners and witnesses: AppendEntries, heartbeats, snapshots.

Rules:
- AppendEntries receiver (Raft §5.3): reject unless the log has an entry at
  ``prev_index`` with ``prev_term``; delete a conflicting tail; append new
  entries; raise commit to ``min(leader commit, last new index)``. Every
  AppendRequest gets exactly one AppendResponse; a rejection carries a hint
  (the largest index whose term is <= ``prev_term``) for fast back-off.
- A snapshot newer than the commit index replaces the log (kept when the log
  already holds the snapshot's last entry) and its configuration.
- Witness: a re-sent entry that carries a payload the stored copy lacks is
  rewritten (an "upgrade"); payloads at or below the leader's payload floor
  (capped by the commit index) are dropped via ``Ready.payload_floor``; every
  successful AppendResponse carries ``payload_index`` (also the answer to the
  append that made the node a witness).
- An acknowledgement leaves only with the entries it names persisted: one
  still queued when a newer leader replaces those entries is withdrawn
  (``_drop_overwritten_acks``).
"""

from __future__ import annotations

import logging

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMeta,
    SnapshotRequest,
    TimeoutNow,
)
from nexus_raft.consensus.core.state import RaftState

__all__ = ["FollowerSide"]

log = logging.getLogger("nexus_raft.consensus.core")


class FollowerSide(RaftState):
    """Follower behaviour (mixin of :class:`~nexus_raft.consensus.core.raft.Raft`)."""

    __slots__ = ()

    def step_follower(self, m: Message) -> None:
        """Messages of the current term while following."""
        if isinstance(m, AppendRequest):
            self._heard_from_leader(m.frm)
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            self._heard_from_leader(m.frm)
            self._handle_heartbeat(m)
        elif isinstance(m, SnapshotRequest):
            self._heard_from_leader(m.frm)
            self._handle_snapshot(m)
        elif isinstance(m, TimeoutNow):
            if self.is_witness:
                log.warning("node %d: witness ignores TimeoutNow from %d", self.id, m.frm)
                return
            log.info("node %d: TimeoutNow from %d, campaigning", self.id, m.frm)
            self.hup(transfer=True)
        elif isinstance(m, ReadIndexRequest):
            self.send(
                ReadIndexResponse(
                    frm=self.id, to=m.frm, term=self.term, index=0, context=m.context, reject=True
                )
            )
        elif isinstance(m, ReadIndexResponse):
            self.handle_read_index_response(m)
        # VoteResponse / AppendResponse / HeartbeatResponse: stale, nothing to do.

    def _heard_from_leader(self, leader: int) -> None:
        self.election_elapsed = 0
        self.leader_id = leader
        self.stalled_voter_seen = False
        self.cannot_lead = False

    def _handle_append(self, m: AppendRequest) -> None:
        lg = self.log
        witness = self.is_witness
        if m.prev_index < lg.committed:
            self.send(
                AppendResponse(
                    frm=self.id,
                    to=m.frm,
                    term=self.term,
                    index=lg.committed,
                    payload_index=self.witness_payload_index() if witness else 0,
                )
            )
            return
        old_last = lg.last_index()
        res = lg.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries, witness)
        if res is None:
            hint = lg.find_conflict_by_term(min(m.prev_index, lg.last_index()), m.prev_term)
            self.send(
                AppendResponse(
                    frm=self.id,
                    to=m.frm,
                    term=self.term,
                    index=m.prev_index,
                    reject=True,
                    reject_hint=hint,
                    hint_term=lg.term_or_zero(hint),
                )
            )
            return
        last_new, written = res
        if written:
            if written[0].index <= old_last:
                self._drop_overwritten_acks(written[0].index)
            self.note_appended(written)
            if written[0].index <= self.payload_hi:
                self.payload_hi = written[0].index - 1
        payload_index = 0
        # Asked again after the append: the entries may have made this node a
        # witness (its ADD_WITNESS among them). It then answers as one, with
        # what it really stored; 0 would leave a single full voter's leader,
        # which counts this witness as a payload holder, waiting for an answer
        # that never comes when it has nothing more to send.
        if self.is_witness:
            self._witness_floor(m.payload_floor)
            payload_index = min(self.witness_payload_index(), last_new)
        self.send(
            AppendResponse(
                frm=self.id, to=m.frm, term=self.term, index=last_new, payload_index=payload_index
            )
        )

    def _drop_overwritten_acks(self, first: int) -> None:
        """Withdraw acknowledgements, not handed out yet, of entries from ``first`` on
        that a leader of a later term just replaced.

        An AppendResponse waits in ``msgs`` for the next Ready, whose messages
        go out only after its entries are persisted. If a newer leader's
        append (or snapshot) replaced the acknowledged entries before that
        Ready, the older leader would hear of entries this node never
        persists. Acknowledgements of this term stay: a leader never conflicts
        with its own entries (a witness's payload upgrade rewrites the same
        entries, which stay acknowledged).
        """
        term = self.term
        kept: list[Message] = []
        gone: list[Message] = []
        for x in self.msgs:
            replaced = (
                type(x) is AppendResponse and not x.reject and x.term < term and x.index >= first
            )
            (gone if replaced else kept).append(x)
        if gone:
            # In place: a driver holds this list while it steps a request and
            # looks for the request's answer in it afterwards.
            self.msgs[:] = kept
            self.withdrawn.extend(gone)

    def _handle_heartbeat(self, m: Heartbeat) -> None:
        lg = self.log
        lg.commit_to(min(m.commit, lg.last_index()))
        if self.is_witness:
            self._witness_floor(m.payload_floor)
        self.send(HeartbeatResponse(frm=self.id, to=m.frm, term=self.term, context=m.context))

    def _witness_floor(self, floor: int) -> None:
        # Only entries this witness knows to be the leader's (committed) may lose payloads.
        floor = min(floor, self.log.committed)
        if floor > self.payload_floor:
            self.payload_floor = floor

    def _handle_snapshot(self, m: SnapshotRequest) -> None:
        index = self.log.last_index() if self._restore(m.snapshot) else self.log.committed
        self.send(AppendResponse(frm=self.id, to=m.frm, term=self.term, index=index))

    def _restore(self, snap: SnapshotMeta) -> bool:
        """Install ``snap`` if it is news; False when it is stale or already covered."""
        lg = self.log
        if snap.index <= lg.committed:
            return False
        # A snapshot may predate this node's own addition (configurations take
        # effect when appended), so it is installed even if it excludes us.
        if lg.match_term(snap.index, snap.term):
            # The log already holds the snapshot's last entry: just commit up to it.
            lg.commit_to(snap.index)
            return False
        log.info("node %d: installing snapshot %d (term %d)", self.id, snap.index, snap.term)
        self._drop_overwritten_acks(lg.committed + 1)
        lg.restore(snap)
        self.restore_conf(snap.index, snap.conf_state)
        self.pending_conf_index = snap.index
        self.payload_hi = snap.index
        if self.payload_floor < snap.index and self.id in snap.conf_state.witnesses:
            self.payload_floor = snap.index
        return True
