"""Fields and shared helpers of the Raft state machine.

:class:`RaftState` holds every field of one core (the slots live here so the
role modules can be mixins with empty slots) and the helpers every role needs:
sending, role resets, configuration tracking, read-request bookkeeping. The
role logic lives in ``election.py`` (pre-vote, vote, candidate),
``replication.py`` (leader; its witness rules in ``payloads.py``),
``follower.py`` (followers, learners, witnesses)
and ``raft.py`` (public API, ``step`` dispatch, ``Ready``).

Invariants (field comments say more):
- ``vote`` is only ever set once per ``term`` (Election Safety); both are
  persisted through ``Ready.hard_state`` before any message depending on them.
- ``prs`` is non-empty only while ``role is LEADER`` and has one entry per
  member of ``conf_state`` (the leader included).
- ``conf_state`` is the configuration after every configuration entry in the
  log (a change takes effect when appended); ``_conf_history`` lets a
  truncation roll it back.
"""

from __future__ import annotations

import logging
import random

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.log import RaftLog
from nexus_raft.consensus.core.membership import apply_conf_change
from nexus_raft.consensus.core.messages import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemberKind,
    Message,
    ReadIndexResponse,
    ReadState,
    Role,
    SoftState,
)
from nexus_raft.consensus.core.progress import Progress
from nexus_raft.consensus.core.read_index import ReadOnly

__all__ = ["RaftState"]

log = logging.getLogger("nexus_raft.consensus.core")


class RaftState:
    """All state of one Raft core; see the module docstring for invariants."""

    __slots__ = (
        "_conf_history",
        "_handed_apply",
        "_outstanding",
        "_prev_hard",
        "_prev_soft",
        "_rng",
        "_waiting_reads",
        "cannot_lead",
        "conf_state",
        "config",
        "dropped_reads",
        "election_elapsed",
        "heartbeat_elapsed",
        "id",
        "lead_transferee",
        "leader_id",
        "log",
        "msgs",
        "needs_bcast",
        "payload_floor",
        "payload_hi",
        "pending_conf_index",
        "prs",
        "randomized_election_timeout",
        "read_only",
        "read_states",
        "reported_floor",
        "role",
        "stalled_voter_seen",
        "term",
        "vote",
        "votes",
        "withdrawn",
    )

    def __init__(self, config: Config, log_: RaftLog, rng: random.Random) -> None:
        self.config = config
        self.id = config.id
        self._rng = rng
        self.log = log_
        self.term = 0
        self.vote = NONE
        self.leader_id = NONE
        self.role = Role.FOLLOWER
        self.conf_state = ConfState()
        self._conf_history: list[tuple[int, ConfState]] = []
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        # Index of the newest configuration entry; a new change waits until it commits.
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        # Reads that arrived before the leader committed an entry of its term.
        self._waiting_reads: list[tuple[bytes, int]] = []
        self.msgs: list[Message] = []
        # Queued answers taken back out of ``msgs`` before any Ready handed
        # them out (see follower._drop_overwritten_acks); a driver that tied a
        # caller to one of them fails that caller, then clears this list.
        self.withdrawn: list[Message] = []
        self.read_states: list[ReadState] = []
        self.dropped_reads: list[bytes] = []
        self._prev_soft = SoftState()
        self._prev_hard = HardState()
        self._outstanding: object | None = None  # the Ready handed out, until advance()
        self._handed_apply = 0  # last index handed out in committed_entries
        self.needs_bcast = False  # leader: new entries or commit to broadcast at ready()
        # Witness: every full voter holds payloads up to here (told by the leader).
        self.payload_floor = 0
        self.reported_floor = 0  # last payload_floor handed out in a Ready
        # Witness: holds the payload of every entry in (max(floor, commit), payload_hi].
        self.payload_hi = 0
        # Witness: rejected a full voter's (pre-)vote because its log lacks entries
        # whose payloads this witness holds, with no leader alive: may campaign.
        self.stalled_voter_seen = False
        # Witness leader that met an entry it holds no payload for: step down, do not retry.
        self.cannot_lead = False

    # --- small queries ------------------------------------------------------------------

    @property
    def is_witness(self) -> bool:
        """Whether this node is a witness in the current configuration."""
        return self.id in self.conf_state.witnesses

    def promotable(self) -> bool:
        """Whether this node may campaign: a voter, or a full voter whose own
        removal is not committed yet (``own_removal_pending``), with no
        snapshot pending.

        The second case is Raft thesis §4.2.2: a server that is not part of
        its own latest configuration still starts elections, since it may be
        needed until that configuration commits; it does not count its own
        vote (the tally is over the latest configuration's voters). Without
        it, two voters {a, b} can lose their leader for good: a leads,
        appends REMOVE a and loses leadership before b has the entry (check
        quorum while b is cut off, or a crash). a never campaigns (not a
        voter of its latest configuration {b}) and refuses b's vote (b's log
        lacks the entry). Campaigning under {b}, a gets b's vote (its log is
        ahead), commits its removal as a non-member leader and steps down
        (``maybe_commit``); then b leads alone. Keeping the leader in office
        until its removal commits would not be enough on its own: a crash and
        restart, or a lost quorum, ends that leadership all the same.
        etcd-io/raft gets the same effect differently: a change takes effect
        when applied, so a node whose removal is uncommitted is still a voter
        of its own tracker and campaigns.
        """
        if self.log.pending_snapshot() is not None:
            return False
        return self.id in self.conf_state.voters or self.own_removal_pending()

    def own_removal_pending(self) -> bool:
        """Whether this node's removal is appended but not committed (as far as it knows).

        True when it is no member of the latest configuration but a full voter
        of one that a truncation can still return to: the newest configuration
        at or below the commit index, or a later one. A witness's removal does
        not count: a witness must never lead as if it were a full member.
        """
        cs = self.conf_state
        nid = self.id
        if nid in cs.voters or nid in cs.learners:
            return False
        committed = self.log.committed
        hist = self._conf_history
        start = 0
        for i, (index, _) in enumerate(hist):
            if index <= committed:
                start = i
        return any(nid in c.full_voters for _, c in hist[start:])

    def hard_state(self) -> HardState:
        """The hard state as it is now."""
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        """The soft state as it is now."""
        return SoftState(self.leader_id, self.role)

    # --- sending ------------------------------------------------------------------------

    def send(self, m: Message) -> None:
        """Queue a message for the next Ready (persist-before-send is the caller's job)."""
        self.msgs.append(m)

    # --- role changes -------------------------------------------------------------------

    def reset_randomized_election_timeout(self) -> None:
        """Pick a new timeout in [election_tick, 2 * election_tick)."""
        et = self.config.election_tick
        self.randomized_election_timeout = et + self._rng.randrange(et)

    def reset(self, term: int) -> None:
        """Common part of every role change; a new term clears the vote."""
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.leader_id = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.lead_transferee = NONE
        self.votes = {}
        self.prs = {}
        self.needs_bcast = False
        self.drop_pending_reads()

    def become_follower(self, term: int, leader: int) -> None:
        """Follow ``leader`` (or nobody) in ``term``."""
        was = self.role
        self.reset(term)
        self.leader_id = leader
        self.role = Role.FOLLOWER
        if was is not Role.FOLLOWER:
            log.debug("node %d: %s -> follower in term %d", self.id, was.value, term)

    def drop_pending_reads(self) -> None:
        """Fail every pending read: remote ones get a rejecting response, local ones drop."""
        pending = [(p.context, r) for p in self.read_only.drain() for r in p.requesters]
        pending.extend(self._waiting_reads)
        self._waiting_reads = []
        for ctx, requester in pending:
            if requester == self.id:
                self.dropped_reads.append(ctx)
            else:
                self.send(
                    ReadIndexResponse(
                        frm=self.id, to=requester, term=self.term, index=0, context=ctx, reject=True
                    )
                )

    def handle_read_index_response(self, m: ReadIndexResponse) -> None:
        """The leader answered a read this node forwarded."""
        if m.reject:
            self.dropped_reads.append(m.context)
        else:
            self.read_states.append(ReadState(m.index, m.context))

    def witness_payload_index(self) -> int:
        """Witness: it holds the payload of every entry up to here that may still need one.

        Entries at or below the payload floor (every full voter has them) or
        the commit index (already held by two members) count as held.
        """
        base = max(self.payload_floor, self.log.committed)
        if self.payload_hi < base:
            self.payload_hi = base
        last = self.log.last_index()
        while self.payload_hi < last:
            lo = self.payload_hi + 1
            for e in self.log.entries(lo, min(last + 1, lo + 256)):
                if e.data is None:
                    return self.payload_hi
                self.payload_hi = e.index
        return min(self.payload_hi, last)

    def witness_end(self) -> int:
        """Witness: where its log ends for vote, campaign and transfer decisions.

        With 2 full voters + 1 witness, the entries after its last payload
        index (held as metadata only, beyond the floor and the commit index)
        cannot have committed unless both full voters hold them (the payload
        rule needs two payload holders and this witness is not one), so no
        full voter can need them from this witness: its log ends at its last
        payload index. Not when a configuration change is among them (the
        change is in effect and may alter that reasoning), nor in any other
        configuration: then it is the last index.
        """
        last = self.log.last_index()
        cs = self.conf_state
        if len(cs.full_voters) != 2 or len(cs.witnesses) != 1:
            return last
        end = self.witness_payload_index()
        if end >= last:
            return last
        for e in self.log.entries(max(end + 1, self.log.first_index()), last + 1):
            if e.type is EntryType.CONF_CHANGE:
                return last
        return end

    # --- configuration ------------------------------------------------------------------

    def restore_conf(self, base_index: int, cs: ConfState) -> None:
        """Start configuration tracking from ``cs`` as of ``base_index``."""
        self.conf_state = cs
        self._conf_history = [(base_index, cs)]

    def note_appended(self, ents: list[Entry] | tuple[Entry, ...]) -> None:
        """Track configuration entries among freshly appended ``ents`` (which may
        have replaced a tail: changes at or after ``ents[0].index`` are undone)."""
        if not ents:
            return
        first = ents[0].index
        hist = self._conf_history
        if hist[-1][0] >= first:
            while len(hist) > 1 and hist[-1][0] >= first:
                hist.pop()
            self._set_conf(hist[-1][1])
        for e in ents:
            if e.type is EntryType.CONF_CHANGE and e.data is not None:
                cs = apply_conf_change(self.conf_state, ConfChange.decode(e.data))
                hist.append((e.index, cs))
                self.pending_conf_index = max(self.pending_conf_index, e.index)
                self._set_conf(cs)

    def prune_conf_history(self) -> None:
        """Forget configurations that no truncation can return to (at or below commit)."""
        hist = self._conf_history
        committed = self.log.committed
        n = 0
        while n + 1 < len(hist) and hist[n + 1][0] <= committed:
            n += 1
        if n:
            del hist[:n]

    def _set_conf(self, cs: ConfState) -> None:
        old = self.conf_state
        self.conf_state = cs
        if old == cs:
            return
        log.info("node %d: configuration %s", self.id, cs)
        if self.role is Role.LEADER:
            self.sync_progress()

    def sync_progress(self) -> None:
        """Make ``prs`` match the configuration (leader): add, drop, re-kind members."""
        cs = self.conf_state
        members = cs.members
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        last = self.log.last_index()
        for nid in members:
            kind = cs.kind(nid)
            assert kind is not None
            pr = self.prs.get(nid)
            if pr is None:
                pr = Progress(last + 1, kind, self.config.max_inflight_msgs)
                pr.recent_active = True  # give a new member a full timeout to respond
                if nid == self.id:
                    pr.match = self.log.persisted_index()
                self.prs[nid] = pr
            else:
                pr.kind = kind
        if self.lead_transferee not in cs.voters or self.lead_transferee in cs.witnesses:
            self.lead_transferee = NONE

    def is_peer_member(self, nid: int) -> bool:
        """Whether ``nid`` may speak to this node as a member.

        True for a member of the current configuration and of every
        configuration a truncation can still return to: a member whose
        removal is appended but not committed keeps talking (a leader
        replicates its own removal until it commits).
        """
        cs = self.conf_state
        if nid in cs.voters or nid in cs.learners:
            return True
        return any(nid in c.voters or nid in c.learners for _, c in self._conf_history)

    def member_kind(self, nid: int) -> MemberKind | None:
        """Kind of ``nid`` in the current configuration."""
        return self.conf_state.kind(nid)

    # --- hooks implemented by the role mixins (declared for the type checker) ------------

    def become_leader(self) -> None:
        """Implemented in replication.py."""
        raise NotImplementedError

    def bcast_append(self) -> None:
        """Implemented in replication.py."""
        raise NotImplementedError

    def maybe_commit(self) -> bool:
        """Implemented in replication.py."""
        raise NotImplementedError

    def hup(self, transfer: bool = False) -> None:
        """Implemented in election.py."""
        raise NotImplementedError

    def step_follower(self, m: Message) -> None:
        """Implemented in follower.py."""
        raise NotImplementedError
