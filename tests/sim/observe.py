"""Checks and coverage counts the cluster applies to each Ready (split from cluster.py).

- ``check_backed``: persist before send, for granted votes and acknowledged
  appends (the leader's own appends may leave before its fsync; the cluster
  models the node driver's parallel append).
- ``note_leader_commit``: the commit rule (a leader's commit lands on an
  entry of its own term, Raft §5.4.2) and the Figure 8 coverage row.
- ``note_truncation``: the truncated-suffix coverage rows.
"""

from __future__ import annotations

from typing import Any

from nexus_raft.consensus.core.messages import (
    AppendResponse,
    Entry,
    EntryType,
    Message,
    VoteResponse,
)
from tests.sim.checker import Violation
from tests.sim.node import SimNode

# ``c`` below is the tests.sim.cluster.Cluster (not imported: it imports this module).
Cluster = Any


def check_backed(c: Cluster, m: Message) -> None:
    """Persist before send: a granted vote and an acknowledged append are durable."""
    st = c.nodes[m.frm].storage
    if type(m) is VoteResponse:
        if m.granted and not m.pre_vote:
            hs = st.hard_state
            # A later term also persisted is fine: the node never votes in m.term again.
            if hs.term < m.term or (hs.term == m.term and hs.vote != m.to):
                raise Violation(
                    "vote persisted before sent",
                    f"n{m.frm} grants its term-{m.term} vote to n{m.to} but persisted "
                    f"term {hs.term} vote {hs.vote}",
                )
    elif type(m) is AppendResponse and not m.reject and m.index > st.last_index():
        raise Violation(
            "append persisted before acknowledged",
            f"n{m.frm} acknowledges index {m.index} but persisted only up to "
            f"{st.last_index()}",
        )


def note_truncation(c: Cluster, n: SimNode, ents: tuple[Entry, ...]) -> None:
    """Count a real conflict (a stored term differs), not a witness's payload upgrade."""
    st = n.storage
    base = ents[0].index
    lo = max(base, st.first_index())
    hi = min(ents[-1].index, st.last_index())
    if lo > hi:
        return
    old = st.entries(lo, st.last_index() + 1)
    bad = next((o.index for o in old if o.index <= hi and o.term != ents[o.index - base].term),
               0)
    if not bad:
        return
    c.hit(c.stats, "follower truncated suffix")
    if any(o.type is EntryType.CONF_CHANGE for o in old if o.index >= bad):
        c.hit(c.stats, "uncommitted conf change truncated")

def note_leader_commit(c: Cluster, n: SimNode, commit: int, term: int) -> None:
    """A leader's commit moves only onto an entry of its own term (Raft §5.4.2:
    earlier terms' entries commit only with one); counts the Figure 8 case."""
    old = c.check.hard.get(n.id)
    lo = (old.commit if old is not None else 0) + 1
    st = n.storage
    if commit < lo:
        return
    if st.term(commit) != term:
        raise Violation(
            "commit rule",
            f"leader n{n.id} (term {term}) commits {commit}, an entry of term "
            f"{st.term(commit)}, by counting replicas (Raft §5.4.2, Figure 8)",
        )
    if lo >= st.first_index() and st.term(lo) < term:
        c.hit(c.stats, "previous-term entries committed")
