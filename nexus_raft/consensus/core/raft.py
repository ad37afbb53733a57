"""The Raft state machine: the public API of the sans-I/O core.

Feed it ``tick()``, ``step(message)``, ``propose(data)``, ``read_index(ctx)``,
membership and transfer requests; collect work with ``ready()`` and
acknowledge it with ``advance(ready)``. It never blocks, never does I/O and
takes randomness only from the ``random.Random`` it is given.

``step`` first handles terms for every role (a higher term makes the node a
follower; a lower-term request is answered with the current term so the
sender steps down; a lower-term response is dropped), then hands the message
to the step function of the current role (``step_leader`` in
replication.py, ``step_candidate`` in election.py, ``step_follower`` in
follower.py).

Ready protocol: at most one ``Ready`` is outstanding. ``ready()`` hands out
what accumulated; the caller persists ``snapshot``, ``entries`` and
``hard_state`` (and drops payloads up to ``payload_floor``), then sends
``messages``, applies ``committed_entries`` and serves ``read_states``, then
calls ``advance(ready)``. Entries are handed out to apply only once they are
persisted locally, and the leader counts its own copy toward a quorum only
once it is persisted.
"""

from __future__ import annotations

import random

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.election import Election
from nexus_raft.consensus.core.follower import FollowerSide
from nexus_raft.consensus.core.log import InvariantViolation, RaftLog
from nexus_raft.consensus.core.membership import conf_state_after, validate_conf_change
from nexus_raft.consensus.core.messages import (
    MESSAGE_TYPES,
    NONE,
    Accepted,
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    Message,
    Outcome,
    ReadIndexRequest,
    ReadIndexResponse,
    Ready,
    Rejected,
    RejectReason,
    Role,
    SnapshotRequest,
    SoftState,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.consensus.core.progress import ProgressState
from nexus_raft.consensus.core.replication import Replication
from nexus_raft.consensus.core.status import PeerProgress, Status
from nexus_raft.consensus.core.storage import LogStorage
from nexus_raft.errors import ConfigError, RaftUsageError

__all__ = ["Raft"]


class Raft(FollowerSide, Election, Replication):
    """One Raft member. See the module docstring for the protocol."""

    __slots__ = ()

    def __init__(self, config: Config, storage: LogStorage, rng: random.Random) -> None:
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {type(config).__name__}")
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        hs, cs = storage.initial_state()
        lg = RaftLog(storage)
        super().__init__(config, lg, rng)
        self.term = hs.term
        self.vote = hs.vote
        last = lg.last_index()
        if hs.commit > last:
            raise InvariantViolation(f"persisted commit {hs.commit} beyond last index {last}")
        lg.commit_to(hs.commit)
        if config.applied > lg.committed:
            raise ConfigError(f"applied {config.applied} is beyond the commit index {lg.committed}")
        lg.applied_to(config.applied)
        self._handed_apply = lg.applied
        self._prev_hard = hs
        self._restore_conf_from_storage(storage, cs)
        self.payload_hi = lg.committed
        self.become_follower(self.term, NONE)

    def _restore_conf_from_storage(self, storage: LogStorage, cs: ConfState) -> None:
        lg = self.log
        lo = lg.committed + 1
        tail = lg.entries(lo, lg.last_index() + 1)
        if not any(e.type is EntryType.CONF_CHANGE for e in tail):
            self.restore_conf(lg.committed, cs)
            return
        # Uncommitted configuration entries may still be truncated: rebuild the
        # configuration as of the commit index so that a truncation can undo them.
        snap = storage.snapshot()
        base = conf_state_after(snap.conf_state, lg.entries(lg.first_index(), lo))
        self.restore_conf(lg.committed, base)
        self.note_appended(tail)

    # --- properties -----------------------------------------------------------------

    @property
    def role_name(self) -> str:
        """The role as a string (for logs and tools)."""
        return self.role.value

    # --- events ---------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.role is Role.LEADER:
            self.tick_leader()
            return
        self.election_elapsed += 1
        if self.election_elapsed < self.randomized_election_timeout:
            return
        self.election_elapsed = 0
        if self.is_witness and (not self.stalled_voter_seen or self.cannot_lead):
            # A witness campaigns only to hand entries to a lagging full voter.
            # Still, the leader is presumed gone: end its lease so that this
            # node's vote is available to the full voters' elections.
            self.leader_id = NONE
            return
        if not self.promotable():
            self.leader_id = NONE
            return
        self.hup()

    def campaign(self) -> None:
        """Start an election now (pre-vote first when enabled)."""
        self.hup()

    def step(self, m: Message) -> None:
        """Handle one message from a peer (see the module docstring for term rules)."""
        if not isinstance(m, MESSAGE_TYPES):
            raise TypeError(f"m must be a Raft message, not {type(m).__name__}")
        if m.to != self.id:
            raise RaftUsageError(f"message for node {m.to} stepped into node {self.id}")
        if m.term > self.term:
            if isinstance(m, VoteRequest):
                in_lease = (
                    self.config.check_quorum
                    and self.leader_id != NONE
                    and self.election_elapsed < self.config.election_tick
                )
                if in_lease and not m.transfer:
                    self.send(
                        VoteResponse(
                            frm=self.id,
                            to=m.frm,
                            term=self.term,
                            granted=False,
                            pre_vote=m.pre_vote,
                        )
                    )
                    return
                if not m.pre_vote:
                    self.become_follower(m.term, NONE)
            elif isinstance(m, VoteResponse) and m.pre_vote and m.granted:
                pass  # granted pre-votes carry the term we would campaign in
            elif isinstance(m, (AppendRequest, Heartbeat, SnapshotRequest)):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            self._answer_stale(m)
            return
        if isinstance(m, VoteRequest):
            self.handle_vote_request(m)
        elif self.role is Role.LEADER:
            self.step_leader(m)
        elif self.role is Role.FOLLOWER:
            self.step_follower(m)
        else:
            self.step_candidate(m)

    def _answer_stale(self, m: Message) -> None:
        """Answer a request of an older term with ours, so its sender steps down."""
        me, term = self.id, self.term
        if isinstance(m, VoteRequest):
            self.send(VoteResponse(frm=me, to=m.frm, term=term, granted=False, pre_vote=m.pre_vote))
        elif isinstance(m, AppendRequest):
            self.send(AppendResponse(frm=me, to=m.frm, term=term, index=m.prev_index, reject=True))
        elif isinstance(m, Heartbeat):
            self.send(HeartbeatResponse(frm=me, to=m.frm, term=term, context=m.context))
        elif isinstance(m, SnapshotRequest):
            self.send(
                AppendResponse(frm=me, to=m.frm, term=term, index=self.log.committed, reject=True)
            )
        elif isinstance(m, ReadIndexRequest):
            self.send(
                ReadIndexResponse(
                    frm=me, to=m.frm, term=term, index=0, context=m.context, reject=True
                )
            )
        elif isinstance(m, ReadIndexResponse):
            # The answer still belongs to our caller: a confirmed index stays valid.
            self.handle_read_index_response(m)

    # --- requests ---------------------------------------------------------------------

    def _refuse_proposal(self) -> Rejected | None:
        if self.role is not Role.LEADER:
            reason = RejectReason.WITNESS if self.is_witness else RejectReason.NOT_LEADER
            return Rejected(reason, self.leader_id)
        if self.is_witness:
            return Rejected(RejectReason.WITNESS, NONE)
        if self.id not in self.conf_state.voters:
            return Rejected(RejectReason.NOT_LEADER, NONE)
        if self.lead_transferee != NONE:
            return Rejected(RejectReason.TRANSFERRING, self.id)
        return None

    def propose(self, data: bytes) -> Outcome:
        """Append ``data`` as a new entry (leader only); it commits if that entry does."""
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        cs = self.conf_state
        nid = self.id
        # Fast path first (this is the hot loop of a busy leader).
        if (
            self.role is not Role.LEADER
            or self.lead_transferee != NONE
            or nid not in cs.voters
            or nid in cs.witnesses
        ):
            refused = self._refuse_proposal()
            assert refused is not None
            return refused
        limit = self.config.max_proposal_bytes
        if limit and len(data) > limit:
            return Rejected(RejectReason.TOO_LARGE, nid)
        term = self.term
        index = self.log.append_new(term, data)
        self.needs_bcast = True
        return Accepted(index, term)

    def propose_conf_change(self, cc: ConfChange) -> Outcome:
        """Append a single-server membership change; it takes effect once appended.

        Refused (``LEADER_NOT_READY``) until an entry of this leader's term has
        committed, and (``CONF_CHANGE_PENDING``) while an earlier change is
        uncommitted: one change at a time, each from a known configuration.
        With a witness in the configuration, a removal that would leave some
        committed entry on fewer than two full voters is refused
        (``UNSAFE_REMOVAL``, see ``removal_hazard``).
        """
        if not isinstance(cc, ConfChange):
            raise TypeError(f"cc must be a ConfChange, not {type(cc).__name__}")
        refused = self._refuse_proposal()
        if refused is not None:
            return refused
        lg = self.log
        if lg.term_or_zero(lg.committed) != self.term:
            # Until an entry of its term commits, this leader may not know the
            # latest configuration: an uncommitted change of an earlier term can
            # still win, and a change appended now could differ from it by two
            # members (Ongaro, raft-dev 2015). Refused, not queued: retry.
            return Rejected(RejectReason.LEADER_NOT_READY, self.id)
        if self.pending_conf_index > lg.committed:
            return Rejected(RejectReason.CONF_CHANGE_PENDING, self.id)
        if validate_conf_change(self.conf_state, cc) is not None:
            return Rejected(RejectReason.INVALID_CONF_CHANGE, self.id)
        if cc.type is ConfChangeType.REMOVE and self.conf_state.witnesses:
            hazard = self.removal_hazard(cc.node_id)
            if hazard:
                return Rejected(RejectReason.UNSAFE_REMOVAL, self.id, hazard)
        index = self.log.last_index() + 1
        self.append_entries([Entry(index, self.term, EntryType.CONF_CHANGE, cc.encode())])
        return Accepted(index, self.term)

    def read_index(self, context: bytes) -> Outcome:
        """Start a linearizable read; its ReadState (or a dropped read) comes in a Ready.

        ``Accepted(0, term)`` means the read is under way (on this leader, or
        forwarded to the leader). Contexts must be unique among pending reads.
        """
        if not isinstance(context, bytes):
            raise TypeError(f"context must be bytes, not {type(context).__name__}")
        if self.is_witness:
            leader = NONE if self.role is Role.LEADER else self.leader_id
            return Rejected(RejectReason.WITNESS, leader)
        if self.role is Role.LEADER:
            if self.id not in self.conf_state.voters:
                return Rejected(RejectReason.NOT_LEADER, NONE)
            self.leader_read(context, self.id)
            return Accepted(0, self.term)
        if self.leader_id == NONE:
            return Rejected(RejectReason.NOT_LEADER, NONE)
        self.send(ReadIndexRequest(frm=self.id, to=self.leader_id, term=self.term, context=context))
        return Accepted(0, self.term)

    def transfer_leadership(self, target: int) -> Outcome:
        """Hand leadership to ``target`` (a full voter) via TimeoutNow once it is up to date.

        Proposals are refused until the transfer ends; it is abandoned after an
        election timeout.
        """
        if not isinstance(target, int) or isinstance(target, bool):
            raise TypeError(f"target must be an int, not {type(target).__name__}")
        if self.role is not Role.LEADER:
            return Rejected(RejectReason.NOT_LEADER, self.leader_id)
        cs = self.conf_state
        if target not in cs.full_voters:
            if target in cs.witnesses:
                why = f"member {target} is a witness: only a full voter can lead"
            elif target in cs.learners:
                why = f"member {target} is a learner: only a full voter can lead"
            else:
                why = f"node {target} is not a member"
            return Rejected(RejectReason.NOT_MEMBER, self.id, why)
        self.handle_transfer(target)
        return Accepted(self.log.last_index(), self.term)

    def report_unreachable(self, peer: int) -> None:
        """The transport could not reach ``peer``: stop pipelining to it."""
        pr = self.prs.get(peer) if self.role is Role.LEADER else None
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, peer: int, success: bool) -> None:
        """The caller finished (or failed) sending the snapshot to ``peer``."""
        pr = self.prs.get(peer) if self.role is Role.LEADER else None
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not success:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the next heartbeat response before probing again.
        pr.probe_sent = True

    # --- Ready ------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ``ready()`` would hand out anything (False while one is outstanding)."""
        if self._outstanding is not None:
            return False
        lg = self.log
        ph = self._prev_hard
        ps = self._prev_soft
        return bool(
            self.msgs
            or self.needs_bcast
            or lg.has_unhanded_entries()
            or lg.pending_snapshot() is not None
            or lg.applicable_hi() > self._handed_apply
            or self.read_states
            or self.dropped_reads
            or ph.term != self.term
            or ph.vote != self.vote
            or ph.commit != lg.committed
            or ps.leader_id != self.leader_id
            or ps.role is not self.role
            or self.payload_floor > self.reported_floor
        )

    def ready(self) -> Ready:
        """Hand out accumulated work; call ``advance()`` with it once done."""
        if self._outstanding is not None:
            raise RaftUsageError("ready() called again before advance()")
        if self.needs_bcast:
            self.needs_bcast = False
            if self.role is Role.LEADER:
                self.bcast_append()
        lg = self.log
        # Build the states only when they changed (dataclass __eq__ is slow and
        # this runs once per Ready on the hot path).
        soft: SoftState | None = None
        ps = self._prev_soft
        if ps.leader_id != self.leader_id or ps.role is not self.role:
            soft = self._prev_soft = self.soft_state()
        hard: HardState | None = None
        ph = self._prev_hard
        if ph.term != self.term or ph.vote != self.vote or ph.commit != lg.committed:
            hard = self._prev_hard = self.hard_state()
        snap = lg.take_snapshot()
        ents = lg.take_unstable()
        committed: tuple[Entry, ...] = ()
        hi = lg.applicable_hi()
        if hi > self._handed_apply:
            out = lg.entries(self._handed_apply + 1, hi + 1)
            if self.is_witness:
                committed = tuple(e for e in out if e.type is EntryType.CONF_CHANGE)
            else:
                committed = tuple(out)
            self._handed_apply = hi
        floor: int | None = None
        if self.payload_floor > self.reported_floor:
            floor = self.reported_floor = self.payload_floor
        rd = Ready(
            soft_state=soft,
            hard_state=hard,
            entries=ents,
            snapshot=snap,
            committed_entries=committed,
            messages=tuple(self.msgs),
            read_states=tuple(self.read_states) if self.read_states else (),
            payload_floor=floor,
            dropped_reads=tuple(self.dropped_reads) if self.dropped_reads else (),
        )
        if self.msgs:
            self.msgs = []
        if self.withdrawn:
            self.withdrawn = []
        if self.read_states:
            self.read_states = []
        if self.dropped_reads:
            self.dropped_reads = []
        self._outstanding = (rd, self._handed_apply)
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied ``rd``."""
        out = self._outstanding
        if not isinstance(out, tuple) or out[0] is not rd:
            raise RaftUsageError("advance() needs the Ready returned by the last ready()")
        self._outstanding = None
        lg = self.log
        applied_hi: int = out[1]
        if rd.snapshot is not None:
            lg.stable_snap_to(rd.snapshot.index)
            lg.applied_to(rd.snapshot.index)
            self._handed_apply = max(self._handed_apply, rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            lg.stable_to(last.index, last.term)
        lg.applied_to(min(applied_hi, lg.committed))
        if self.role is Role.LEADER:
            me = self.prs.get(self.id)
            if me is not None and me.maybe_update(lg.persisted_index()) and self.maybe_commit():
                self.needs_bcast = True
        self.prune_conf_history()

    # --- introspection ------------------------------------------------------------------

    def status(self) -> Status:
        """A frozen view of this node's state."""
        progress: dict[int, PeerProgress] = {}
        floor = self.payload_floor
        if self.role is Role.LEADER:
            progress = {
                nid: PeerProgress(
                    pr.match,
                    pr.next,
                    pr.state,
                    pr.kind,
                    pr.payload_match,
                    pr.recent_active,
                    pr.payload_mode,
                )
                for nid, pr in sorted(self.prs.items())
            }
            floor = self.leader_payload_floor()
        return Status(
            id=self.id,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader_id=self.leader_id,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            conf_state=self.conf_state,
            progress=progress,
            payload_floor=floor,
            transferee=self.lead_transferee,
        )

    def __repr__(self) -> str:
        return (
            f"Raft(id={self.id}, role={self.role.value}, term={self.term}, "
            f"commit={self.log.committed}, last={self.log.last_index()})"
        )
