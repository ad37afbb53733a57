"""Elections: pre-vote, vote, the candidate's step function, and the witness's vote rules.

Rules (Raft §5.2, §5.4.1, thesis §9.6):
- A node grants at most one vote per term (``vote`` is persisted before the
  response leaves, through ``Ready.hard_state``).
- It grants only to a candidate whose log is at least as up to date.
- A pre-vote asks "would you vote for me in term+1?" without changing any
  term or vote, so an isolated node rejoining cannot disrupt a healthy leader.
- Lease: a node that heard from a leader within the election timeout refuses
  (pre-)votes of a higher term unless the request comes from a leadership
  transfer (``step`` in raft.py checks this before calling in here).
- Who campaigns (``promotable`` in state.py): a voter of the latest
  configuration, and also a full voter whose own removal is appended but not
  committed (thesis §4.2.2); that one does not count its own vote, as the
  tally is over the latest configuration's voters.

Witness rules (a witness is a voter that may lack payloads):
- It votes with the normal up-to-date check, with one exception for the
  2 full voters + 1 witness configuration: entries at the end of its log
  whose payloads it does not hold (metadata only, above the payload floor and
  the commit index, with no configuration change among them) are ignored
  when it compares logs. Such an entry cannot be committed without the
  payload on both full voters (the commit rule needs two payload holders and
  the witness is not one), so a full-voter candidate that lacks it lacks only
  uncommitted entries. Without this the surviving full voter could never get
  the witness's vote after the leader died with entries in flight.
- It never starts an election on its own timer unless it rejected a full
  voter's (pre-)vote, with no leader alive, and holds the payload of every
  entry that voter lacks (``stalled_voter_seen``); with metadata alone it
  could not bring the voter up to date. Then it campaigns, leads only to bring
  the full voters up to date, and hands leadership over (replication.py).
- "Its log" in these three decisions (vote, campaign, and the transfer in
  replication.py) ends at ``witness_end()`` (state.py): in 2+1 the
  metadata-only tail described above is not part of it. Otherwise a witness
  whose log ends with such entries rejects the lagging voter and never
  campaigns: two of three members up and no leader, for ever.
"""

from __future__ import annotations

import logging

from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    Heartbeat,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    Role,
    SnapshotRequest,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.consensus.core.quorum import VoteResult, vote_result
from nexus_raft.consensus.core.state import RaftState

__all__ = ["Election"]

log = logging.getLogger("nexus_raft.consensus.core")


class Election(RaftState):
    """Campaigning and voting (mixin of :class:`~nexus_raft.consensus.core.raft.Raft`)."""

    __slots__ = ()

    # --- starting an election -------------------------------------------------------

    def hup(self, transfer: bool = False) -> None:
        """Start an election now (pre-vote first unless disabled or a transfer)."""
        if self.role is Role.LEADER or not self.promotable():
            return
        if self.config.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self.role = Role.PRE_CANDIDATE
            self.votes = {}
            self.leader_id = NONE
            self.reset_randomized_election_timeout()
            vote_term = self.term + 1
        else:
            self.reset(self.term + 1)
            self.vote = self.id
            self.role = Role.CANDIDATE
            vote_term = self.term
        log.debug(
            "node %d: %s for term %d", self.id, "pre-campaign" if pre else "campaign", vote_term
        )
        self.votes[self.id] = True
        voters = self.conf_state.voters
        result = vote_result(voters, self.votes)
        if result is VoteResult.WON:
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self.become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        for v in sorted(voters):
            if v != self.id:
                self.send(
                    VoteRequest(
                        frm=self.id,
                        to=v,
                        term=vote_term,
                        last_log_index=last_index,
                        last_log_term=last_term,
                        pre_vote=pre,
                        transfer=transfer,
                    )
                )

    # --- answering votes -----------------------------------------------------------

    def handle_vote_request(self, m: VoteRequest) -> None:
        """Grant or refuse a (pre-)vote; exactly one VoteResponse goes back."""
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.leader_id == NONE)
            or (m.pre_vote and m.term > self.term)
        )
        up_to_date = self._log_ok_for(m)
        if can_vote and up_to_date:
            self.send(
                VoteResponse(frm=self.id, to=m.frm, term=m.term, granted=True, pre_vote=m.pre_vote)
            )
            if not m.pre_vote:
                self.election_elapsed = 0
                self.vote = m.frm
            return
        if (
            not up_to_date
            and self.is_witness
            and m.frm in self.conf_state.full_voters
            and self._can_supply_after(m.last_log_index)
        ):
            self.stalled_voter_seen = True
        self.send(
            VoteResponse(frm=self.id, to=m.frm, term=self.term, granted=False, pre_vote=m.pre_vote)
        )
        if self.stalled_voter_seen and self.role is Role.FOLLOWER and not self.cannot_lead:
            # No leader is alive (the lease check let this request through) and a
            # full voter lacks entries only this witness can give it: campaign now.
            # The flag stays set (the witness retries at each election timeout)
            # until it hears from a leader.
            self.hup()

    def _log_ok_for(self, m: VoteRequest) -> bool:
        if self.is_witness and m.frm in self.conf_state.full_voters:
            end = self.witness_end()
            end_term = self.log.term_or_zero(end)
            return m.last_log_term > end_term or (
                m.last_log_term == end_term and m.last_log_index >= end
            )
        return self.log.is_up_to_date(m.last_log_index, m.last_log_term)

    def _can_supply_after(self, index: int) -> bool:
        """Witness: it holds the payload of every entry after ``index`` up to its own end."""
        end = self.witness_end()
        if index >= end or index < self.log.first_index() - 1:
            return False
        return all(e.data is not None for e in self.log.entries(index + 1, end + 1))

    # --- the candidate's step function ------------------------------------------------

    def step_candidate(self, m: Message) -> None:
        """Messages of the current term while (pre-)campaigning."""
        if isinstance(m, VoteResponse):
            if m.pre_vote != (self.role is Role.PRE_CANDIDATE):
                return  # an answer to an earlier campaign
            self.votes.setdefault(m.frm, m.granted)
            result = vote_result(self.conf_state.voters, self.votes)
            if result is VoteResult.WON:
                if self.role is Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self.become_leader()
            elif result is VoteResult.LOST:
                self.become_follower(self.term, NONE)
        elif isinstance(m, (AppendRequest, Heartbeat, SnapshotRequest)):
            # Someone won this term: follow it and handle the message as a follower.
            self.become_follower(m.term, m.frm)
            self.step_follower(m)
        elif isinstance(m, ReadIndexRequest):
            self.send(
                ReadIndexResponse(
                    frm=self.id, to=m.frm, term=self.term, index=0, context=m.context, reject=True
                )
            )
        elif isinstance(m, ReadIndexResponse):
            self.handle_read_index_response(m)
        # AppendResponse / HeartbeatResponse / TimeoutNow: stale, nothing to do.
