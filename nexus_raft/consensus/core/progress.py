"""The leader's view of one follower: match/next, flow-control state, in-flight window.

Invariants (asserted by the tests):
- ``0 <= match < next``; ``next - 1`` is the index of the last entry sent (or
  to be probed).
- ``match`` only grows, with one exception: when a full voter starts lagging,
  a witness's ``match`` drops to what it holds payloads for, so that the
  metadata-only entries are re-sent with payloads; while the leader sends it
  payloads, a witness acknowledges only what it holds payloads for.
- In REPLICATE, every AppendRequest sent and not yet acknowledged is in
  ``inflights`` with the index of its last entry, in increasing order.
- In SNAPSHOT, ``pending_snapshot`` is the index of the snapshot being sent
  and nothing else is sent until it is acknowledged or reported.
- For a witness, ``payload_match <= match`` is how far it holds payloads
  contiguously (entries at or below the payload floor count as held).
"""

from __future__ import annotations

import enum
from collections import deque

from nexus_raft.consensus.core.messages import MemberKind
from nexus_raft.errors import RaftUsageError

__all__ = ["Inflights", "Progress", "ProgressState"]


class ProgressState(enum.Enum):
    """How the leader is currently replicating to a follower."""

    PROBE = "probe"  # one AppendRequest per heartbeat until the match point is found
    REPLICATE = "replicate"  # pipelined, optimistic next, bounded by the in-flight window
    SNAPSHOT = "snapshot"  # a snapshot is being sent; everything else waits


class Inflights:
    """A FIFO window of in-flight AppendRequests, bounded by count and bytes."""

    __slots__ = ("_bytes", "_q", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self.size = size
        self.max_bytes = max_bytes  # 0 = no byte limit
        self._q: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def add(self, index: int, nbytes: int) -> None:
        """Record a sent message whose last entry is ``index``."""
        if self.full():
            raise RaftUsageError("cannot add to a full in-flight window")
        if self._q and index < self._q[-1][0]:
            raise RaftUsageError("in-flight indexes must not decrease")
        self._q.append((index, nbytes))
        self._bytes += nbytes

    def free_le(self, index: int) -> None:
        """Forget every message whose last entry is at or below ``index`` (acknowledged)."""
        q = self._q
        while q and q[0][0] <= index:
            self._bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        """Forget the oldest message (it may be lost: let one more go out)."""
        if self._q:
            self._bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        """No more messages may be sent until some are acknowledged."""
        return len(self._q) >= self.size or (0 < self.max_bytes <= self._bytes)

    def count(self) -> int:
        """Messages in flight."""
        return len(self._q)

    def reset(self) -> None:
        """Forget everything (state change)."""
        self._q.clear()
        self._bytes = 0


class Progress:
    """Replication state of one member as seen by the leader."""

    __slots__ = (
        "appended_since_heartbeat",
        "commit_sent",
        "inactive_ticks",
        "inflights",
        "kind",
        "match",
        "next",
        "payload_match",
        "payload_mode",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "stall_ticks",
        "state",
        "unsupplied",
    )

    def __init__(self, next_index: int, kind: MemberKind, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.kind = kind
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Whether an AppendRequest was sent in PROBE since the last heartbeat response.
        self.probe_sent = False
        # Heard from since the last check-quorum round.
        self.recent_active = False
        # Leader ticks since this member last answered (for "is this voter healthy").
        self.inactive_ticks = 0
        # Leader ticks this member has been behind the leader's last index
        # without its match moving (reset whenever match advances or it is
        # caught up): a slow member whose match keeps moving stays at ~0.
        self.stall_ticks = 0
        # An AppendRequest went out since the last heartbeat round: the next
        # round may skip this member (the append did a heartbeat's job).
        self.appended_since_heartbeat = False
        # Highest commit index this member was told (by an append or a
        # heartbeat, optimistically: a lost message is covered by the next
        # heartbeat round). No commit-only append is sent when the commit
        # moves; the leader's tick tops up members whose value lags.
        self.commit_sent = 0
        self.payload_match = 0
        # Witness: the leader currently sends it payloads (some full voter lags).
        self.payload_mode = False
        # A witness leader found it cannot supply this full voter (it needs a
        # payload the witness dropped, or a snapshot): it sends it no more
        # entries during this leadership (replication.py, ``_skip_member``).
        self.unsupplied = False
        self.inflights = Inflights(max_inflight)

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.value}, "
            f"kind={self.kind.value}, inflight={self.inflights.count()})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Fall back to probing from the match point (or past a snapshot just sent)."""
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        """Pipeline appends optimistically from the match point."""
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """Stop appending until the snapshot at ``snapshot_index`` is installed."""
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An acknowledgement up to ``n`` arrived; True if ``match`` moved forward."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
            self.stall_ticks = 0
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def sent_entries(self, last_index: int, nbytes: int) -> None:
        """Account for an AppendRequest whose last entry is ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if last_index >= self.next:
                self.next = last_index + 1
                self.inflights.add(last_index, nbytes)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at ``rejected``; back off toward ``match_hint``.

        Returns False when the rejection is stale (it answers an older request).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        """Whether the leader must not send another AppendRequest now."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
