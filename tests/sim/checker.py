"""Incremental safety checkers for the simulator.

Each check is fed the events that could break it, at the moment they happen,
and keeps just enough history to decide in O(1) per event (no log scans, no
copies). The first broken rule raises :class:`Violation`; the simulator stops
the seed there and prints the trace.

Rules (Raft paper, figure 3, plus the witness and read rules of issue 4):

- Election Safety: at most one leader per term, over every (term, leader) seen.
- Leader Append-Only: a leader never overwrites or deletes its own entries.
- Log Matching: the entry (index, term) is the same everywhere: same type, same
  payload where both copies have one, and the same term at ``index - 1``. By
  induction on the index that is exactly "same index and term => same prefix".
- Leader Completeness: a new leader's log holds the newest committed entry
  known when it was elected (hence, by Log Matching, every committed entry).
- State Machine Safety: no two nodes apply different entries at one index.
- Per node: persisted commit and term never go backwards, one vote per term.
- ReadIndex linearizability: a read issued after a write was committed is
  served at an index >= that write's, and the state it reads reflects it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexus_raft.consensus.core.messages import NONE, Entry, EntryType, HardState


class Violation(Exception):
    """A safety or liveness rule was broken; ``invariant`` names the rule."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(slots=True)
class ReadIssue:
    """A ReadIndex request as the client issued it."""

    node: int
    key: bytes
    commit_at_issue: int  # highest index known committed when the read was issued
    write_index: int  # index of the newest committed write to ``key`` at issue time
    issued_at: int
    read_index: int = -1
    epoch: int = 0  # leaders elected in the run before the read was issued
    waited: bool = False  # issued on a leader whose first entry had not committed


class Checker:
    """All invariant state of one simulated cluster."""

    __slots__ = (
        "applied",
        "commit_index",
        "commit_term",
        "entries",
        "hard",
        "leader_req",
        "leaders",
        "reads",
    )

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> the one leader of that term
        # (index, term) -> (term at index-1 or -1 if unknown, type, payload or None)
        self.entries: dict[tuple[int, int], tuple[int, EntryType, bytes | None]] = {}
        self.applied: dict[int, tuple[int, bytes | None]] = {}  # index -> (term, payload)
        self.commit_index = 0  # highest commit index persisted by any node
        self.commit_term = 0  # term of the entry at commit_index
        self.hard: dict[int, HardState] = {}  # node -> last persisted hard state
        self.leader_req: dict[int, tuple[int, int, int]] = {}  # node -> (term, index, term)
        self.reads: dict[bytes, ReadIssue] = {}

    # --- elections -------------------------------------------------------------------

    def leader_elected(self, node: int, term: int) -> None:
        """``node`` became leader of ``term`` (Election Safety; arms Leader Completeness)."""
        other = self.leaders.setdefault(term, node)
        if other != node:
            raise Violation("election safety", f"term {term} has leaders {other} and {node}")
        self.leader_req[node] = (term, self.commit_index, self.commit_term)

    def leader_log(
        self, node: int, term: int, last_index: int, snap_index: int, term_at: int | None
    ) -> None:
        """Check a leader's persisted log against what was committed before its election.

        ``term_at`` is the term of its entry at the required index (None if it
        has no such entry or it is compacted).
        """
        req = self.leader_req.pop(node, None)
        if req is None or req[0] != term:
            return
        _, index, want = req
        if index == 0 or index <= snap_index:
            return
        if last_index < index or term_at != want:
            raise Violation(
                "leader completeness",
                f"node {node} leads term {term} but its log (last {last_index}) lacks committed "
                f"entry {index}/{want} (has term {term_at})",
            )

    def required_for(self, node: int) -> int:
        """The committed index the pending Leader Completeness check of ``node`` needs (0: none)."""
        req = self.leader_req.get(node)
        return req[1] if req is not None else 0

    # --- logs ------------------------------------------------------------------------------

    def appended(
        self,
        node: int,
        entries: tuple[Entry, ...] | list[Entry],
        prev_term: int,
        persisted_last: int,
        leader_term: int,
    ) -> None:
        """``node`` persists ``entries`` after an entry of term ``prev_term`` (-1: unknown).

        ``leader_term`` is the term in which the node was leader when it last
        persisted and still is (0 otherwise); then overwriting is forbidden.
        """
        first = entries[0].index
        if leader_term and first <= persisted_last:
            raise Violation(
                "leader append-only",
                f"leader {node} (term {leader_term}) rewrites its log from {first} "
                f"(persisted last {persisted_last})",
            )
        seen = self.entries
        prev = prev_term
        expect = first
        for e in entries:
            if e.index != expect:
                raise Violation("log matching", f"node {node} appends non-contiguous {e.index}")
            expect += 1
            key = (e.index, e.term)
            old = seen.get(key)
            if old is None:
                seen[key] = (prev, e.type, e.data)
            else:
                oprev, otype, odata = old
                if otype is not e.type or (prev != -1 and oprev != -1 and oprev != prev):
                    raise Violation(
                        "log matching",
                        f"node {node} entry {e.index}/{e.term}: type {e.type.name} after term "
                        f"{prev}, elsewhere {otype.name} after term {oprev}",
                    )
                if e.data is not None:
                    if odata is None:
                        seen[key] = (oprev if oprev != -1 else prev, otype, e.data)
                    elif odata != e.data:
                        raise Violation(
                            "log matching",
                            f"node {node} entry {e.index}/{e.term} payload {e.data[:40]!r} "
                            f"differs from {odata[:40]!r}",
                        )
                elif oprev == -1 and prev != -1:
                    seen[key] = (prev, otype, odata)
            prev = e.term

    def snapshot_installed(self, node: int, index: int, term: int) -> None:
        """``node`` installed a snapshot ending at (index, term): it must be committed."""
        if index == 0:
            return
        got = self.applied.get(index)
        if got is not None and got[0] != term:
            raise Violation(
                "state machine safety",
                f"node {node} installs snapshot {index}/{term} but {index} applied "
                f"as term {got[0]}",
            )

    # --- hard state and commit ----------------------------------------------------------

    def hard_state(self, node: int, hs: HardState) -> bool:
        """``node`` persists ``hs``; returns whether its commit went up."""
        old = self.hard.get(node)
        self.hard[node] = hs
        if old is None:
            return hs.commit > 0
        if hs.term < old.term:
            raise Violation("term monotonic", f"node {node} term {old.term} -> {hs.term}")
        if hs.commit < old.commit:
            raise Violation(
                "commit monotonic", f"node {node} persisted commit {old.commit} -> {hs.commit}"
            )
        if hs.term == old.term and old.vote != NONE and hs.vote != old.vote:
            raise Violation(
                "one vote per term",
                f"node {node} voted {old.vote} then {hs.vote} in term {hs.term}",
            )
        return hs.commit > old.commit

    def restarted(self, node: int, term: int, vote: int, commit: int) -> None:
        """A restarted node must come back with its persisted term, vote and commit."""
        hs = self.hard.get(node)
        if hs is None:
            return
        if term < hs.term or (term == hs.term and hs.vote != NONE and vote != hs.vote):
            raise Violation(
                "durable vote",
                f"node {node} restarted at term {term} vote {vote}; persisted {hs.term}/{hs.vote}",
            )
        if commit < hs.commit:
            raise Violation(
                "commit monotonic", f"node {node} restarted at commit {commit} < {hs.commit}"
            )

    def committed(self, index: int, term: int) -> None:
        """Some node persisted commit ``index`` whose entry has ``term``."""
        if index > self.commit_index:
            self.commit_index = index
            self.commit_term = term

    # --- state machines ----------------------------------------------------------------

    def applied_entry(self, node: int, entry: Entry, expected_index: int) -> bool:
        """``node`` applies ``entry``; returns whether this is the first apply of that
        index with its payload (a witness applies metadata only)."""
        if entry.index != expected_index:
            raise Violation(
                "apply order", f"node {node} applies {entry.index}, expected {expected_index}"
            )
        got = self.applied.get(entry.index)
        if got is None:
            self.applied[entry.index] = (entry.term, entry.data)
            return entry.data is not None
        if got[0] != entry.term or (
            entry.data is not None and got[1] is not None and got[1] != entry.data
        ):
            raise Violation(
                "state machine safety",
                f"node {node} applies {entry.index}/{entry.term} {entry.data!r:.60}; another node "
                f"applied {entry.index}/{got[0]} {got[1]!r:.60}",
            )
        if got[1] is None and entry.data is not None:
            self.applied[entry.index] = (entry.term, entry.data)
            return True
        return False

    def payload_copies(self, index: int, holders: int, needed: int, who: str) -> None:
        """A committed entry's payload must be held by ``needed`` members."""
        if holders < needed:
            raise Violation(
                "payload copies",
                f"committed entry {index} has its payload on {holders} member(s) ({who}), "
                f"needs {needed}",
            )

    # --- reads ---------------------------------------------------------------------------------

    def read_issued(self, ctx: bytes, issue: ReadIssue) -> None:
        """A client issued ReadIndex ``ctx``."""
        self.reads[ctx] = issue

    def read_state(self, node: int, index: int, ctx: bytes) -> ReadIssue | None:
        """``node`` released a read state; returns the issue to serve, if it is ours."""
        issue = self.reads.get(ctx)
        if issue is None:
            return None
        if issue.node != node:
            raise Violation("read index", f"read {ctx!r} of node {issue.node} released on {node}")
        if index < issue.commit_at_issue:
            raise Violation(
                "linearizable read",
                f"read {ctx!r} on node {node} got index {index} < {issue.commit_at_issue}, "
                "committed before it was issued",
            )
        issue.read_index = index
        return issue

    def read_served(self, ctx: bytes, issue: ReadIssue, seen_index: int) -> None:
        """The read was served from a state whose value of the key was written at ``seen_index``."""
        self.reads.pop(ctx, None)
        if seen_index < issue.write_index:
            raise Violation(
                "linearizable read",
                f"read {ctx!r} of {issue.key!r} on node {issue.node} (read index "
                f"{issue.read_index}) saw the write at {seen_index}, but the write at "
                f"{issue.write_index} committed before the read was issued",
            )
