"""What a member refuses from its peers before the Raft core sees it.

The Raft core believes every message it is given: that is its contract. This
module is the node's boundary check, applied by
:class:`~nexus_raft.consensus.node.server.PeerHandler` to each received
request (and, for terms, by the node to each response), against the core's
current configuration and term. A refused request is answered at once with
``PeerRefused`` (PERMISSION_DENIED) and changes nothing: no term, no vote,
no log, no leadership.

Rules (each function below returns ``(kind, reason)`` or None):

========================  =====================================================
check                     refused when
========================  =====================================================
sender                    the sender is not in this node's configuration
                          (voter, learner or witness; a member whose removal
                          is not committed yet still counts); a node not in
                          its own configuration (being added, waiting for the
                          configuration that holds it) accepts appends,
                          heartbeats and snapshots from anyone that passed
                          the transport's checks
term                      above ``current + 2**32`` or above ``2**63 - 1``:
                          no correct peer ever gets that far ahead
vote                      ``last_log_term`` above the vote's term; a
                          ``transfer`` vote (it bypasses the leader lease)
                          from a non-full-voter or for a term above
                          ``current + 1`` is downgraded to an ordinary vote
                          (a transfer campaign is always the next term after
                          the leader's, so a leader in its lease keeps it)
append                    ``prev_term`` above the message term; entries whose
                          indexes do not follow ``prev_index`` one by one, or
                          whose terms fall outside ``[prev_term, term]`` or go
                          down; a commit index beyond the last entry sent
                          (the leader never sends one: it tells each follower
                          at most what that message carries)
snapshot                  ``last_term`` above the message term; a
                          configuration that does not contain the sender or is
                          malformed; a term below the current one is answered
                          "stale" without reading any data
TimeoutNow                from anyone but the current leader, or for another
                          term than the current one
========================  =====================================================

Not defended here: a member that lies within these bounds (a real member's
key, or, without mutual TLS, anyone who claims to be a member). Mutual TLS
with a per-member certificate identity (the transport's ``PeerIdentity``)
closes the second gap; nothing closes the first.
"""

from __future__ import annotations

from collections.abc import Callable

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    ConfState,
    Heartbeat,
    SnapshotRequest,
    VoteRequest,
)

__all__ = [
    "MAX_TERM",
    "MAX_TERM_STEP",
    "Refusal",
    "append_refusal",
    "sender_refusal",
    "snapshot_refusal",
    "term_refusal",
    "timeout_now_refusal",
    "transfer_refusal",
    "vote_refusal",
]

MAX_TERM = 2**63 - 1
"""No term above this is ever accepted (terms are persisted and sent as 64-bit)."""

MAX_TERM_STEP = 2**32
"""No message may be more than this many terms ahead of this node."""

MAX_INDEX = 2**63 - 1
"""No log index above this is ever accepted."""

Refusal = tuple[str, str]
"""``(kind, reason)``: a short category (for rate-limited logs) and one line."""

IsMember = Callable[[int], bool]
"""Whether an id may speak as a member (the core's ``is_peer_member``)."""


def term_refusal(term: int, current: int) -> Refusal | None:
    """Refuse a term no correct peer can have (see the module table)."""
    if term > MAX_TERM:
        return "term-bound", f"term {term} is above the largest term {MAX_TERM}"
    if term > current + MAX_TERM_STEP:
        return "term-bound", f"term {term} is more than 2**32 terms ahead of {current}"
    return None


def sender_refusal(
    sender: int, is_member: IsMember, *, me: int, joining_ok: bool
) -> Refusal | None:
    """Refuse a sender that is not a member (``is_member``).

    ``joining_ok``: while this node (``me``) is not in its own configuration
    (it is being added and has not received the configuration that holds
    it yet), any sender is accepted: only a leader that knows this node
    sends to it.
    """
    if is_member(sender):
        return None
    if joining_ok and not is_member(me):
        return None
    return "not-member", f"node {sender} is not a member of this node's configuration"


def vote_refusal(m: VoteRequest, current: int, is_member: IsMember) -> Refusal | None:
    """Refuse a (pre-)vote request (sender and term rules; see :func:`transfer_refusal`)."""
    refused = sender_refusal(m.frm, is_member, me=m.to, joining_ok=False) or term_refusal(
        m.term, current
    )
    if refused is not None:
        return refused
    if m.last_log_term > m.term:
        return "malformed", f"last log term {m.last_log_term} above the vote's term {m.term}"
    if m.last_log_index > MAX_INDEX:
        return "malformed", f"last log index {m.last_log_index} out of range"
    return None


def transfer_refusal(m: VoteRequest, current: int, conf: ConfState) -> Refusal | None:
    """Why a ``transfer`` vote may not bypass the leader lease (None: it may).

    The caller downgrades such a vote to an ordinary one instead of refusing
    it: a transfer campaign is always for the term after the leader's, from
    a full voter; anything else gets no lease bypass.
    """
    if not m.transfer:
        return None
    if m.frm not in conf.full_voters:
        return "transfer", f"transfer vote from {m.frm}, which is not a full voter"
    if m.term > current + 1:
        return (
            "transfer",
            f"transfer vote for term {m.term}; a transfer campaign runs at {current + 1}",
        )
    return None


def append_refusal(
    m: AppendRequest | Heartbeat, current: int, is_member: IsMember
) -> Refusal | None:
    """Refuse an append or heartbeat (sender, term and the shape a leader sends)."""
    refused = sender_refusal(m.frm, is_member, me=m.to, joining_ok=True) or term_refusal(
        m.term, current
    )
    if refused is not None:
        return refused
    if isinstance(m, Heartbeat):
        if m.commit > MAX_INDEX:
            return "malformed", f"commit index {m.commit} out of range"
        return None
    term = m.term
    prev_term = m.prev_term
    if prev_term > term:
        return "malformed", f"prev term {prev_term} above the message term {term}"
    index = m.prev_index
    if index > MAX_INDEX - len(m.entries):
        return "malformed", f"prev index {index} out of range"
    last_term = prev_term
    for e in m.entries:
        index += 1
        if e.index != index:
            return "malformed", f"entry index {e.index} where {index} should follow"
        if e.term > term:
            return "malformed", f"entry {index} has term {e.term} above the message term {term}"
        if e.term < last_term:
            return "malformed", f"entry {index} has term {e.term}, below the one before it"
        last_term = e.term
    if m.commit > index:
        return "malformed", f"commit index {m.commit} beyond the last entry sent ({index})"
    return None


def snapshot_refusal(m: SnapshotRequest, current: int, is_member: IsMember) -> Refusal | None:
    """Refuse a snapshot before any of its data is read (stale terms are answered apart)."""
    refused = sender_refusal(m.frm, is_member, me=m.to, joining_ok=True) or term_refusal(
        m.term, current
    )
    if refused is not None:
        return refused
    snap = m.snapshot
    if snap.term > m.term:
        return "malformed", f"snapshot term {snap.term} above the message term {m.term}"
    if snap.index < 1 or snap.index > MAX_INDEX:
        return "malformed", f"snapshot index {snap.index} out of range"
    members = snap.conf_state.voters | snap.conf_state.learners
    if m.frm not in members:
        return "not-member", f"the snapshot's configuration does not contain its sender {m.frm}"
    return None


def timeout_now_refusal(
    sender: int, term: int, current: int, leader: int, is_member: IsMember, *, me: int
) -> Refusal | None:
    """TimeoutNow is honoured only from the current leader, in the current term."""
    refused = sender_refusal(sender, is_member, me=me, joining_ok=False) or term_refusal(
        term, current
    )
    if refused is not None:
        return refused
    if sender != leader or term != current:
        return (
            "timeout-now",
            f"TimeoutNow from {sender} at term {term}; the leader is {leader or 'unknown'} "
            f"at term {current}",
        )
    return None
