"""The leader's witness rules: the payload rule, witness traffic, the payload floor, removals.

A witness is a voter that may hold entries without their payloads, so its
acknowledgement counts toward a quorum but not as a copy of the data. The
leader keeps the two-copies promise (every committed entry durable on two
members) with these rules:

- Payload rule: on top of the quorum, an entry commits only when two members
  hold its payload durably: the leader (once its own copy is persisted),
  full voters with ``match >= index`` and witnesses that acknowledged the
  payload (``payload_match``) count. A witness leader holds few payloads and
  counts a full voter only.
- Witness traffic: while every other full voter is healthy a witness gets
  metadata only; when one lags, the witness is re-sent the uncommitted
  entries with payloads (and gets payloads from then on). Lagging: not in
  REPLICATE, or silent for ``election_tick`` ticks, or behind without its
  match moving for as long. A slow voter whose match keeps moving is healthy
  (the commit follows it anyway); a silently stopped one stalls commits for
  about one election timeout before the witness takes payloads. Every
  AppendRequest/Heartbeat carries ``payload_floor``: the second-highest
  match among full voters, capped by the commit index (0 with fewer than
  two full voters), so the witness drops only payloads two full voters hold.
- Removals (``removal_hazard``): with a witness in the configuration, a
  removal that would leave a committed entry on fewer than two full voters
  is refused; the witness's payloads are never counted as that second copy.
"""

from __future__ import annotations

import logging

from nexus_raft.consensus.core.messages import MemberKind
from nexus_raft.consensus.core.progress import Progress, ProgressState
from nexus_raft.consensus.core.state import RaftState

__all__ = ["LeaderPayloads"]

log = logging.getLogger("nexus_raft.consensus.core")


class LeaderPayloads(RaftState):
    """Witness payload rules of a leader (mixin under :class:`Replication`)."""

    __slots__ = ()

    def leader_payload_floor(self) -> int:
        """Two full voters hold payloads up to here durably (and it is committed).

        The second-highest ``match`` among full voters, capped by the commit
        index: entries up to here have two copies without the witness's, so it
        may drop their payloads. With fewer than two full voters it is 0: the
        witness's copy is then the only second one.
        """
        cs = self.conf_state
        if not cs.witnesses:
            return 0
        first = second = 0
        for nid in cs.full_voters:
            pr = self.prs.get(nid)
            m = pr.match if pr is not None else 0
            if m > first:
                first, second = m, first
            elif m > second:
                second = m
        return min(second, self.log.committed)

    def removal_hazard(self, nid: int) -> str:
        """Why removing ``nid`` would leave a committed entry with one durable copy ("").

        Asked only with a witness in the configuration. Only full voters'
        copies count, each up to its ``match`` (a lower bound of what it holds
        durably): a witness's payloads do not, since it may have dropped any
        of them up to a floor an earlier leader set, which this leader cannot
        see. So the full voters that remain must hold every committed entry
        twice. This refuses removing a full voter of 2 full + 1 witness (the
        witness dropped what both held), and removing the witness or a full
        voter while another full voter lags behind the commit index.
        """
        committed = self.log.committed
        left = sorted(
            (
                (self.prs[n].match if n in self.prs else 0, n)
                for n in self.conf_state.full_voters
                if n != nid
            ),
            reverse=True,
        )
        second = left[1][0] if len(left) > 1 else 0
        if second >= committed:
            return ""
        held = ", ".join(f"{n} up to {m}" for m, n in left) or "none"
        what = (
            f"entry {committed}"
            if second + 1 == committed
            else f"entries {second + 1}..{committed}"
        )
        return (
            f"removing {nid} would leave committed {what} on fewer than two full members"
            f" (full members left: {held})"
        )

    def full_voters_healthy(self) -> bool:
        """Whether every other full voter is keeping up (so witnesses need no payloads).

        See the module rules: a full window or a slow answer alone is not lagging.
        """
        return not self._lagging_full_voter()

    def _lagging_full_voter(self) -> str:
        """Why some other full voter lags ("" if none does; "no other" if none exists)."""
        others = 0
        limit = self.config.election_tick
        for nid in self.conf_state.full_voters:
            if nid == self.id:
                continue
            pr = self.prs.get(nid)
            if pr is None:
                return f"{nid} has no progress"
            if pr.state is not ProgressState.REPLICATE:
                return f"{nid} is in {pr.state.value}"
            if pr.inactive_ticks >= limit:
                return f"{nid} silent for {pr.inactive_ticks} ticks"
            if pr.stall_ticks >= limit:
                return f"{nid} stuck at {pr.match} for {pr.stall_ticks} ticks"
            others += 1
        return "" if others else "no other full voter"

    def _update_payload_mode(self, pr: Progress) -> None:
        why = self._lagging_full_voter()
        want = bool(why)
        if want == pr.payload_mode:
            return
        if want:
            log.info("node %d: witness payloads on: %s", self.id, why)
        else:
            log.info("node %d: witness payloads off (full voters healthy)", self.id)
        pr.payload_mode = want
        if want:
            # From now on the witness's match counts only entries whose payload it
            # holds: forget the metadata-only part so it is re-sent with payloads.
            held = max(pr.payload_match, self.log.committed)
            if pr.match > held and pr.state is not ProgressState.SNAPSHOT:
                pr.match = held
                pr.become_probe()

    def _payload_cap(self) -> int | None:
        """Highest index whose payload two members hold durably (None: no second member).

        The leader's own copy counts only once persisted, like every other
        member's: the caller may send appends before its own fsync, and a
        follower's copy plus the witness's metadata is one payload copy.
        """
        if self.is_witness:
            return self._witness_leader_cap()
        first = self.log.persisted_index()  # this leader's durable copy
        second = -1
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            if pr.kind is MemberKind.VOTER:
                m = pr.match
            elif pr.kind is MemberKind.WITNESS:
                m = min(pr.payload_match, pr.match)
            else:
                continue
            if m > first:
                first, second = m, first
            elif m > second:
                second = m
        return None if second < 0 else second

    def _witness_leader_cap(self) -> int:
        """A witness leader: two full voters must hold an entry, or one plus itself.

        It holds payloads only up to ``witness_payload_index()``; beyond that an
        entry needs the two best full-voter matches.
        """
        matches = sorted(
            (self.prs[n].match for n in self.conf_state.full_voters if n in self.prs),
            reverse=True,
        )
        first = matches[0] if matches else 0
        second = matches[1] if len(matches) > 1 else 0
        return max(second, min(first, self.witness_payload_index()))
