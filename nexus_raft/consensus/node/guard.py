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
                          is not committed yet still counts), with two
                          exceptions: a node not in its own configuration
                          (being added, waiting for the configuration that
                          holds it) accepts appends, heartbeats, snapshots
                          and votes from anyone that passed the transport's
                          checks, and a lagging member accepts appends,
                          heartbeats and snapshots from a leader it does
                          not know yet (below)
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

A leader this node does not know yet. A member that missed a configuration
change (it was down or cut off while member X joined) has an old
configuration, and X may lead by the time it is back; refusing X for good
would leave it behind forever (etcd's transport faces the same: "local
member falls behind and cannot recognize the members that joined after its
current progress"). So from a sender outside the configuration:

- votes, TimeoutNow, ReadIndex and forwarded requests are always refused
  (votes: unless this node is not in its own configuration, see below): a
  stranger gets no vote, no step-down, no term change from them;
- appends, heartbeats and snapshots are refused while this node knows
  another leader (it heard from one within an election timeout:
  ``leader_id`` is set), so a stranger cannot talk into a member that has a
  leader; the leader it follows is heard (it became that leader by one of
  the rules below, in this term: a proof whose append the log then
  rejected, the configuration entry not appended yet, must not make the
  next append from it wait for an election timeout);
- with no leader known, the sender must prove its membership from what the
  log itself says: an append whose entries include the configuration entry
  that adds the sender, or a snapshot whose configuration contains the
  sender, is checked like a member's (the rules below) and stepped; from
  then on the sender is a member here (configurations take effect when
  appended). With mutual TLS (``authenticated``: the transport proved the
  sender's identity from its certificate) no such proof is needed: the
  sender is a real member, past or present, and the core's term rules
  handle a stale one;
- any other append or heartbeat from it is answered by the node itself,
  without stepping anything (no term, vote, log or leader changes): an
  append is rejected with a hint that makes the leader probe back toward
  what this node lacks, first its last index, then its commit index, then
  0 (the leader then sends from its first index, or its snapshot); a
  heartbeat gets an answer without its read context (it confirms no
  read), so that a leader waiting on a probe sends another append. Where
  no hint moves the leader further (it already sends from index 1), the
  rejection names an index the leader is not probing, so it retries on its
  next heartbeat round instead of at once (see :func:`stranger_answer`).
  A snapshot without the sender in its configuration is refused.

What stays behind: without mutual TLS, a lagging member learns a new
leader only through an append that carries the entry adding it, or a
snapshot taken after it; if that entry lies more than one message past
everything the member holds and the leader has not compacted past it, the
member waits for that compaction (or for a leader it knows). And a
candidate it does not know gets no vote from it.

Not defended here: a member that lies within these bounds (a real member's
key, or, without mutual TLS, anyone who claims to be a member). Mutual TLS
with a per-member certificate identity (the transport's ``PeerIdentity``)
closes the second gap; nothing closes the first.
"""

from __future__ import annotations

from collections.abc import Callable

from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    SnapshotRequest,
    VoteRequest,
)

__all__ = [
    "MAX_TERM",
    "MAX_TERM_STEP",
    "UNPROVEN",
    "Refusal",
    "append_refusal",
    "proves_membership",
    "sender_refusal",
    "snapshot_refusal",
    "stranger_answer",
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

UNPROVEN = "unproven"
"""Refusal kind: an append or heartbeat from a sender outside the configuration,
while no leader is known, that does not prove its membership. The node answers
it with :func:`stranger_answer` instead of refusing it (see the module docstring)."""

_ADDS = (ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_WITNESS)


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


def proves_membership(m: AppendRequest | Heartbeat | SnapshotRequest) -> bool:
    """Whether ``m`` shows its sender is a member: an append carrying the configuration
    entry that adds it, or a snapshot whose configuration contains it."""
    if isinstance(m, SnapshotRequest):
        conf = m.snapshot.conf_state
        return m.frm in conf.voters or m.frm in conf.learners
    if isinstance(m, Heartbeat):
        return False
    for e in m.entries:
        if e.type is EntryType.CONF_CHANGE and e.data:
            try:
                cc = ConfChange.decode(e.data)
            except ValueError:
                continue
            if cc.node_id == m.frm and cc.type in _ADDS:
                return True
    return False


def _stranger_refusal(
    m: AppendRequest | Heartbeat | SnapshotRequest,
    is_member: IsMember,
    leader: int | None,
    authenticated: bool,
) -> Refusal | None:
    """The sender rule for appends, heartbeats and snapshots (see the module docstring).

    ``leader`` None: strangers are never heard (the rule without the exception
    for a leader this node does not know yet).
    """
    refused = sender_refusal(m.frm, is_member, me=m.to, joining_ok=True)
    if refused is None or leader is None:
        return refused
    if leader != NONE:
        return None if leader == m.frm else refused
    if authenticated or proves_membership(m):
        return None
    if isinstance(m, SnapshotRequest):
        return refused
    return (
        UNPROVEN,
        f"node {m.frm} is not a member of this node's configuration and sent no entry adding it",
    )


def stranger_answer(
    m: AppendRequest | Heartbeat, current: int, last_index: int, committed: int
) -> AppendResponse | HeartbeatResponse:
    """This node's own answer to an :data:`UNPROVEN` append or heartbeat; steps nothing.

    The answer carries ``max(m.term, current)``: a leader of an older term
    steps down (as the core would make it), a newer one takes it as a
    follower's. A heartbeat's answer drops the read context. An append is
    rejected with a hint below ``m.prev_index`` (``last_index``, else
    ``committed``, else 0), so the leader probes back by one stage per
    round trip; once it sends from index 1 no hint moves it, and the
    rejection names the last index sent instead of ``prev_index``, which a
    probing leader does not act on (it retries after its next heartbeat).
    """
    term = max(m.term, current)
    if isinstance(m, Heartbeat):
        return HeartbeatResponse(frm=m.to, to=m.frm, term=term)
    prev = m.prev_index
    hint = last_index if prev > last_index else committed if prev > committed else 0
    index = prev if prev > 0 else prev + len(m.entries)
    return AppendResponse(frm=m.to, to=m.frm, term=term, index=index, reject=True,
                          reject_hint=hint)


def vote_refusal(m: VoteRequest, current: int, is_member: IsMember) -> Refusal | None:
    """Refuse a (pre-)vote request (sender and term rules; see :func:`transfer_refusal`).

    A node not in its own configuration (being added, its log still short of
    the entry or snapshot that holds it) votes like any member (Raft thesis
    section 4.1: a server grants votes without consulting its configuration):
    the configuration that holds it may need its vote to elect the leader
    that would send it that configuration (voters {1, 5}, member 5 still
    empty, no leader). It knows no member to tell a stranger from, and a
    stranger gains no more from its vote than from an append, which it
    already accepts from anyone (its term moves either way, within the term
    bound; a candidate's own vote counts nowhere else). Its vote needs the
    core's up-to-date log check like any other, and a ``transfer`` vote from
    it is downgraded (:func:`transfer_refusal`: not a full voter here).
    """
    refused = sender_refusal(m.frm, is_member, me=m.to, joining_ok=True) or term_refusal(
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
    m: AppendRequest | Heartbeat,
    current: int,
    is_member: IsMember,
    *,
    leader: int | None = None,
    authenticated: bool = False,
) -> Refusal | None:
    """Refuse an append or heartbeat (sender, term and the shape a leader sends).

    ``leader``: this node's leader (``NONE``: none known), for the rule on
    senders outside the configuration (None: they are always refused);
    ``authenticated``: the transport proved the sender's identity. A
    refusal of kind :data:`UNPROVEN` is answered with :func:`stranger_answer`.
    """
    refused = _stranger_refusal(m, is_member, leader, authenticated)
    if refused is None or refused[0] == UNPROVEN:
        refused = term_refusal(m.term, current) or refused
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


def snapshot_refusal(
    m: SnapshotRequest,
    current: int,
    is_member: IsMember,
    *,
    leader: int | None = None,
    authenticated: bool = False,
) -> Refusal | None:
    """Refuse a snapshot before any of its data is read (stale terms are answered apart).

    ``leader`` and ``authenticated`` as for :func:`append_refusal`.
    """
    refused = _stranger_refusal(m, is_member, leader, authenticated) or term_refusal(
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
