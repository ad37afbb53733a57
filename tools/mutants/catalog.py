# ruff: noqa: E501  (search texts are exact lines of the code they mutate)
"""The mutants: deliberate safety bugs, each an exact search/replace against a named file.

Every mutant must be caught by the simulators (within the CI seed budget) or
the fast tests; a survivor is a hole in the verification. A search text that
does not occur exactly once makes the run fail with the mutant's name: the
code moved, so the mutant is updated rather than silently skipped.

``origin`` says where the bug comes from: a textbook Raft mistake, or an item
of issue 10 re-introduced (the fix commit shows what its mutant reverts).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MUTANTS", "Edit", "Mutant"]


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``file``."""

    file: str
    old: str
    new: str


CORE_TESTS = ("tests/consensus/core", "tests/sim")


# The simulators come first: the acceptance of issue 11 is that `make sim`
# (CI's seeds) catches each mutant; its tests are the last resort, and the
# table says which check caught it. The node simulator runs the real core
# too, so a core mutant the core simulator misses goes to it next.
CORE_CHECKS = ("core sim", "node sim", "fast tests")
# The core simulator runs the core alone: a bug in the node, its log store or
# the KV service is out of its reach.
NODE_CHECKS = ("node sim", "fast tests")


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug; ``tests``: what the fast-tests check runs; ``checks``: in order."""

    name: str
    what: str
    origin: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...] = CORE_TESTS
    checks: tuple[str, ...] = CORE_CHECKS


_CORE = "nexus_raft/consensus/core/"
_REPL = _CORE + "replication.py"
_RAFT = _CORE + "raft.py"
_LOG = _CORE + "log.py"
_ELECTION = _CORE + "election.py"
_FOLLOWER = _CORE + "follower.py"
_DRIVER = "nexus_raft/consensus/node/driver.py"


def _m(
    name: str, what: str, origin: str, *edits: tuple[str, str, str],
    tests: tuple[str, ...] = CORE_TESTS, checks: tuple[str, ...] | None = None,
) -> Mutant:
    if checks is None:
        checks = CORE_CHECKS if tests == CORE_TESTS else NODE_CHECKS
    return Mutant(name, what, origin, tuple(Edit(f, o, n) for f, o, n in edits), tests, checks)


# Core mutants no simulated system can reach, so the node simulator (an hour
# of CPU on a loaded machine) is not run for them; their regression tests
# drive the core directly. Each use says why the state is out of reach.
_UNREACHABLE = ("core sim", "fast tests")


_PAYLOADS = _CORE + "payloads.py"
_NODE = "nexus_raft/consensus/node/"
_NODE_TESTS = ("tests/consensus/node",)


MUTANTS: tuple[Mutant, ...] = (
    _m(
        "figure-8 commit",
        "count a previous-term entry toward commit by counting replicas",
        "Raft §5.4.2",
        (_REPL, "if c <= lg.committed or lg.term_or_zero(c) != self.term:",
         "if c <= lg.committed:"),
    ),
    _m(
        "leader counts own unpersisted entry",
        "the leader's match moves when it appends, not when its copy is persisted",
        "Raft thesis 10.2.1",
        (_RAFT, "        index = self.log.append_new(term, data)\n",
         "        index = self.log.append_new(term, data)\n"
         "        self.prs[nid].maybe_update(index)\n"),
        (_REPL, "        self.log.append(ents)\n        self.note_appended(ents)\n",
         "        self.log.append(ents)\n        self.note_appended(ents)\n"
         "        if self.id in self.prs:\n"
         "            self.prs[self.id].maybe_update(self.log.last_index())\n"),
    ),
    _m(
        "vote not persisted",
        "a granted vote is not part of the hard state handed out to persist",
        "Raft §5.2 (persist before answering)",
        (_RAFT, "        if ph.term != self.term or ph.vote != self.vote or ph.commit != lg.committed:\n"
         "            hard = self._prev_hard = self.hard_state()",
         "        if ph.term != self.term or ph.commit != lg.committed:\n"
         "            hard = self._prev_hard = self.hard_state()"),
    ),
    _m(
        "vote without up-to-date check",
        "grant a vote to a candidate whose log is behind",
        "Raft §5.4.1",
        (_ELECTION, "        up_to_date = self._log_ok_for(m)\n", "        up_to_date = True\n"),
    ),
    _m(
        "append without log matching",
        "a follower appends without checking the entry before the new ones",
        "Raft §5.3",
        (_LOG, "        if not self.match_term(prev_index, prev_term):\n            return None\n"
         "        last_new",
         "        if prev_index > self.last_index():\n            return None\n        last_new"),
    ),
    _m(
        "follower commits past the leader's entries",
        "the leader sends its whole commit index with every append and a follower raises "
        "its commit to it, beyond the entries it verified",
        "Raft §5.3 (commit = min(leaderCommit, index of last new entry))",
        # Both sides: with either check alone in place the other is redundant.
        (_LOG, "        self.commit_to(min(commit, last_new))",
         "        self.commit_to(min(commit, self.last_index()))"),
        (_REPL, "        told = min(self.log.committed, prev + len(ents))",
         "        told = self.log.committed"),
        # A follower's log that matches an append's entries and then diverges
        # from the leader's needs an append that ends before the divergence;
        # the leader's back-off (find_conflict_by_term on the follower's hint)
        # starts the next append at the first conflicting index in every case
        # we could construct, and no seed reached it. tests/consensus/core/
        # test_follower_commit_bound.py holds the follower to the rule.
        checks=_UNREACHABLE,
    ),
    _m(
        "heartbeat commit not clamped to match",
        "a heartbeat tells a follower the leader's commit even beyond what it matched",
        "etcd raft (sendHeartbeat)",
        (_REPL, "                told = min(pr.match, committed)\n                self.send(\n"
         "                    Heartbeat(",
         "                told = committed\n                self.send(\n                    Heartbeat("),
    ),
    _m(
        "apply before commit",
        "entries are handed out to apply once persisted, committed or not",
        "Raft §5.3",
        (_LOG, "        return min(self.committed, self._offset - 1)",
         "        return self._offset - 1"),
    ),
    _m(
        "quorum off by one",
        "a majority of n is n // 2 (half the voters elect and commit)",
        "Raft §5.2",
        (_CORE + "quorum.py", "    return n // 2 + 1", "    return max(1, n // 2)"),
    ),
    _m(
        "pending conf change guard removed",
        "a second configuration change is accepted while one is uncommitted",
        "Raft thesis §4.1",
        (_RAFT, "        if self.pending_conf_index > lg.committed:\n"
         "            return Rejected(RejectReason.CONF_CHANGE_PENDING, self.id)",
         "        if False:\n            return Rejected(RejectReason.CONF_CHANGE_PENDING, self.id)"),
    ),
    _m(
        "conf not rolled back on truncation",
        "a truncated configuration entry stays in effect",
        "Raft thesis §4.1 (a change takes effect when appended, and is undone with it)",
        (_CORE + "state.py", "        if hist[-1][0] >= first:\n            while",
         "        if False:\n            while"),
    ),
    _m(
        "ReadIndex without heartbeat quorum",
        "the leader answers a read at once, without confirming it still leads",
        "Raft thesis §6.4",
        (_REPL, "        if voters == {self.id}:\n            self._answer_read(lg.committed, context, "
         "requester)",
         "        if True:\n            self._answer_read(lg.committed, context, requester)"),
    ),
    _m(
        "ReadIndex before the leader's first commit",
        "a new leader serves reads at its (possibly stale) commit index",
        "Raft thesis §6.4",
        (_REPL, "        if lg.term_or_zero(lg.committed) != self.term:\n"
         "            # Our commit index may be stale",
         "        if False:\n            # Our commit index may be stale"),
    ),
    _m(
        "witness floor equal to commit",
        "the leader tells witnesses to drop every committed payload",
        "witness payload rule (issue 4)",
        (_PAYLOADS, "        return min(second, self.log.committed)",
         "        return self.log.committed"),
    ),
    _m(
        "witness counted as payload holder without payload",
        "a witness's metadata-only copy counts as the second payload copy",
        "witness payload rule (issue 4)",
        (_PAYLOADS, "                m = min(pr.payload_match, pr.match)",
         "                m = pr.match"),
    ),
    _m(
        "witness drops above its commit",
        "a witness drops payloads up to the leader's floor even past its own commit",
        "witness payload rule (issue 4)",
        (_FOLLOWER, "        floor = min(floor, self.log.committed)\n", ""),
    ),
    _m(
        "session answer not deduplicated",
        "a retried write with the same (client, seq) is applied again",
        "KV sessions (exactly-once writes)",
        # A retry (same seq) counts as a new command. (Skipping only the
        # DUPLICATE answer would refuse the retry as stale instead: an error
        # to the client, not a second apply.)
        ("nexus_raft/kv/sessions.py", "        if s is None or seq > s.seq:\n            return Verdict.NEW",
         "        if s is None or seq >= s.seq:\n            return Verdict.NEW"),
        tests=("tests/kv",),
    ),
    _m(
        "messages sent before the Ready is persisted",
        "the driver sends every message (acks and votes too) before the fsync",
        "persist before send (DESIGN.md)",
        (_DRIVER, "                if isinstance(m, (AppendRequest, Heartbeat)):\n",
         "                if True:\n"),
        (_DRIVER, "        if self.parallel_append and snap is None and not vote_changed and messages:",
         "        if messages:"),
        tests=_NODE_TESTS,
    ),
    # --- issue 10, each fix reverted alone (the fix commit shows what is reverted) ---
    _m(
        "#10.1 conf change before the first commit",
        "a new leader accepts a membership change before an entry of its term commits",
        "issue 10 item 1 (fix dcc7d19)",
        (_RAFT, "        if lg.term_or_zero(lg.committed) != self.term:\n            # Until an entry",
         "        if False:\n            # Until an entry"),
    ),
    _m(
        "#10.3 witness floor with one full voter",
        "with fewer than two full voters the floor is the commit index again",
        "issue 10 item 3 (fix 58f585c)",
        (_PAYLOADS, "        return min(second, self.log.committed)",
         "        return min(second if len(cs.full_voters) > 1 else first, self.log.committed)"),
    ),
    _m(
        "#10.3 unsafe removal accepted",
        "a removal that leaves a committed entry with one full copy is accepted",
        "issue 10 item 3 (fix 58f585c)",
        (_RAFT, "        if cc.type is ConfChangeType.REMOVE and self.conf_state.witnesses:",
         "        if False:"),
    ),
    _m(
        "#10.4 witness end is its last index",
        "a 2+1 witness judges votes, campaigns and transfers by its metadata-only tail",
        "issue 10 item 4 (fix d945cc7)",
        (_CORE + "state.py", "        end = self.witness_payload_index()\n        if end >= last:",
         "        end = last\n        if end >= last:"),
    ),
    _m(
        "#10.7 witness cap counts the unpersisted leader",
        "the payload rule counts the leader's own copy before it is persisted",
        "issue 10 item 7 (fix f118193)",
        # Equivalent to the code before the fix (the largest other copy): a
        # leader's last index is never below a follower's match.
        (_PAYLOADS, "        first = self.log.persisted_index()  # this leader's durable copy",
         "        first = self.log.last_index()  # this leader's durable copy"),
        # Out of every simulator's reach: at most one Ready is outstanding and
        # messages leave only through ready(), so a commit the leader computes
        # before its own fsync is announced (appends, read states, applies) in
        # the next Ready, after that fsync: two durable copies by then. The
        # fix makes the core rule right on its own; tests/consensus/core/
        # test_payload_copies.py drives the core past the protocol to show it.
        checks=_UNREACHABLE,
    ),
    _m(
        "#10.2 restore after the log save without recovery",
        "a crash between the log's snapshot record and the restore is not finished at start",
        "issue 10 item 2 (fix be9849c)",
        (_NODE + "boot.py", "    if sm_applied < snap.index:\n        if not kept.is_file():",
         "    if False:\n        if not kept.is_file():"),
        tests=("tests/consensus/node/test_node_snapshot_install.py",),
    ),
    _m(
        "#10.2 restore before the log save",
        "the driver restores a received snapshot into the state machine before the log "
        "records it (the order before the fix; start-up recovery kept)",
        "issue 10 items 2, 8 (fix be9849c)",
        (_DRIVER, "        if rd.entries or snap is not None or vote_changed:\n",
         "        if snap is not None:\n            await self.applier.restore(snap, kept)\n"
         "        if rd.entries or snap is not None or vote_changed:\n"),
        (_DRIVER, "            # The log now records the snapshot; the state machine follows.\n"
         "            await self.applier.restore(snap, kept)\n",
         "            pass\n"),
        tests=("tests/consensus/node/test_node_snapshot_install.py",),
    ),
    _m(
        "#10.2 the original: restore first, no recovery",
        "the driver restores a received snapshot before the log records it, and a start "
        "after a crash inside the restore applies from the log's older snapshot onto the "
        "wiped state machine (the code before the fix)",
        "issue 10 item 2 (fix be9849c)",
        (_DRIVER, "        if rd.entries or snap is not None or vote_changed:\n",
         "        if snap is not None:\n            await self.applier.restore(snap, kept)\n"
         "        if rd.entries or snap is not None or vote_changed:\n"),
        (_DRIVER, "            # The log now records the snapshot; the state machine follows.\n"
         "            await self.applier.restore(snap, kept)\n",
         "            pass\n"),
        (_NODE + "boot.py", "    if sm_applied < snap.index:\n        if not kept.is_file():",
         "    if False:\n        if not kept.is_file():"),
        tests=("tests/consensus/node/test_node_snapshot_install.py",),
    ),
    _m(
        "#10.5 unsynced Raft batch plus synced marker",
        "a Raft batch is written unsynced, then a small synced marker",
        "issue 10 item 5 (fix f81bef2)",
        # The code before the fix: the marker is one small synced put, which
        # syncs LevelDB's current log file only (flush() has since become a
        # real memtable flush, so calling it would not re-introduce the bug).
        ("nexus_raft/consensus/log/store.py", "    store.apply_batch(batch, sync=True)",
         "    store.apply_batch(batch)\n    if not store.sync:\n"
         "        from nexus_raft.storage._layout import FLUSH_KEY\n"
         "        store._db.put(FLUSH_KEY, b\"\", sync=True)"),
        tests=("tests/consensus/log",),
    ),
    _m(
        "#10.6 answers paired by arrival order",
        "a sender's requests of every kind wait in one queue, in arrival order, and each "
        "answer to that sender completes the oldest; a refused request or one whose caller "
        "gave up keeps its place (the driver before the fix)",
        "issue 10 item 6 (fix fa6b4b5)",
        # Requests answered inside step(): queued before the step, refusal only logged.
        (_NODE + "answers.py",
         "        prior = {id(x) for x in outbox()}\n        refused = step(m)\n",
         "        prior = {id(x) for x in outbox()}\n"
         "        self._reads.setdefault((m.frm, b\"\"), collections.deque()).append(fut)\n"
         "        step(m)\n        return\n        refused = step(m)\n"),
        # Forwarded reads: the same per-sender queue, refusal only logged.
        (_NODE + "answers.py",
         "        key = (m.frm, m.context)\n        self._reads.setdefault(key, collections.deque()).append(fut)\n"
         "        refused = step(m)\n",
         "        key = (m.frm, b\"\")\n        self._reads.setdefault(key, collections.deque()).append(fut)\n"
         "        step(m)\n        return\n        refused = step(m)\n"),
        # A caller that stops waiting (timeout) leaves its future in the queue.
        (_NODE + "answers.py", "        key = (m.frm, m.context)\n        q = self._reads.get(key)",
         "        return\n        key = (m.frm, m.context)\n        q = self._reads.get(key)"),
        # Every answer completes the oldest request of its addressee.
        (_NODE + "answers.py",
         "        if type(m) is ReadIndexResponse:\n            key = (m.to, m.context)",
         "        if True:\n            key = (m.to, b\"\")"),
        tests=("tests/consensus/node/test_node_peer_requests.py",),
    ),
    _m(
        "#10.8 configuration from the log's end",
        "a state machine past the log's last index gets the configuration at the log's end "
        "(older than its state's) instead of being refused",
        "issue 10 item 8 (fix be9849c)",
        (_NODE + "boot.py", "    if sm_applied > last:\n        raise StateAheadOfLog(",
         "    if False:\n        raise StateAheadOfLog("),
        (_NODE + "boot.py", "    upto = max(sm_applied, snap.index)\n",
         "    upto = min(max(sm_applied, snap.index), last)\n"),
        tests=("tests/consensus/node/test_node_snapshot_install.py",),
    ),
    _m(
        "#10.9 read contexts restart at 1",
        "a read's context has no per-start random part",
        "issue 10 item 9 (fix fa6b4b5)",
        (_NODE + "propose.py", "        return _CTX.pack(self.id, self._ctx_nonce, next(self._ctx))",
         "        return _CTX.pack(self.id, 0, next(self._ctx))"),
        tests=("tests/consensus/node/test_node_peer_requests.py",),
    ),
    _m(
        "#10.10 sessions expire by the leader's wall clock",
        "the log clock follows the leader's timestamp wherever it jumps",
        "issue 10 item 10 (fix 763412d)",
        ("nexus_raft/kv/sessions.py",
         "        return max(newest.timestamp_ms, min(timestamp_ms, ceiling))",
         "        return timestamp_ms"),
        tests=("tests/kv/test_sessions.py",),
    ),
    # Misconfiguration (items 11, 12): every simulated member starts with the
    # same initial configuration into its own directory, so no simulator run
    # reaches them; the unit tests on real stores do (and process tests).
    _m(
        "#10.11 cluster id from the peer list only",
        "the derived cluster id ignores which members are witnesses and learners, so members "
        "started with different initial configurations join each other",
        "issue 10 item 11 (fix 62da897)",
        (_NODE + "config.py", "    if w or lrn:\n        text +=", "    if False:\n        text +="),
        tests=("tests/consensus/node/test_datadir.py",), checks=("fast tests",),
    ),
    _m(
        "#10.12 identity recomputed at every start",
        "the data directory's recorded identity is not read back: each start derives the "
        "cluster id from --peers again and records it",
        "issue 10 item 12 (fix 62da897)",
        (_NODE + "datadir.py", "    stored = read_identity(store)\n    if stored is not None:",
         "    stored = None\n    if stored is not None:"),
        tests=("tests/consensus/node/test_datadir.py",), checks=("fast tests",),
    ),
    # --- bugs the node simulator found (tests/sim_node/known.py), each fix reverted ---
    _m(
        "compact: compaction past the core's applied index",
        "a compaction at the state machine's applied index may drop entries above the "
        "persisted commit that the core hands out again after a restart",
        "node simulator find 'compact' (fix 6394d13)",
        (_DRIVER, "        index = min(index, self.raft.log.applied)\n", ""),
        tests=("tests/consensus/node/test_compaction_after_restart.py",),
    ),
)
