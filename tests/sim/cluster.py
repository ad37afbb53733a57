"""A simulated cluster: real Raft cores on MemoryStorage, driven over the seeded network.

Event model per tick: every live node ticks, then messages due this tick are
delivered in rounds (a message sent with delay 0 arrives in the next round of
the same tick) until none is due or a round cap is hit. After each event the
node's ``Ready`` is processed at once, or, with probability
``params.defer_ready``, left until the end of the round (a node batching
work); a crash while a Ready is deferred loses exactly the unpersisted state.

Ready processing follows the core's contract (persist before send):
snapshot -> entries + hard state (persisted) -> send messages -> apply
committed entries -> read states -> witness payload floor -> ``advance``.
Every step is fed to :class:`~tests.sim.checker.Checker` as it happens.
"""

from __future__ import annotations

import random
from collections import Counter

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.membership import apply_conf_change
from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    Message,
    Role,
    SnapshotRequest,
    TimeoutNow,
    VoteResponse,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from tests.sim.checker import Checker, Violation
from tests.sim.fmt import fmt_conf, fmt_msg
from tests.sim.kv import KV, decode_put
from tests.sim.network import Network
from tests.sim.node import SimNode, check_floor, fewest_voters, holds
from tests.sim.observe import check_backed, note_leader_commit, note_truncation
from tests.sim.params import SimParams
from tests.sim.situations import SITUATIONS
from tests.sim.trace import Trace

MAX_ROUNDS = 40  # delivery rounds per tick before the rest waits for the next tick


class Cluster:
    """Nodes, network and checkers of one seeded run."""

    def __init__(self, params: SimParams, rng: random.Random, trace: Trace) -> None:
        self.p = params
        self.rng = rng
        self.trace = trace
        self.now = 0
        self.net = Network(
            rng, loss=params.loss, dup=params.dup, max_delay=params.max_delay,
            reorder=params.reorder,
        )
        self.check = Checker()
        self.nodes: dict[int, SimNode] = {}
        self.snapdata: dict[int, KV] = {}  # snapshot index -> state machine at that index
        self.key_latest: dict[bytes, int] = {}  # key -> index of its newest committed write
        self.defer = params.defer_ready
        self.crash_unpersisted = params.crash_unpersisted  # 0 once faults stop
        self._pending: list[SimNode] = []
        self._reports: list[tuple[int, int, bool]] = []  # (leader, follower, snapshot ok)
        # Failed snapshot sends are reported at the next tick, as a transport would
        # after a timeout; reporting at once could loop forever within one tick
        # (report -> re-send -> dropped -> report ...).
        self._late_reports: list[tuple[int, int, bool]] = []
        self.witness_led: list[tuple[int, int]] = []  # (term, witness) leaderships seen
        self.witness_led_at: list[int] = []  # the tick of each of those elections
        self.witness_handovers: list[tuple[int, int, int]] = []  # (tick, witness, target)
        # What this run exercised (crashes, installs, reads, ...), summed over seeds by the CLI.
        self.stats: Counter[str] = Counter()
        self.hit = SITUATIONS.hit  # count a coverage row: self.hit(self.stats, name)
        self.elections = 0  # leaders seen so far (a read issued before one spans a change)
        self.elected_at: dict[int, int] = {}  # node -> tick it last became leader
        self.candidates: dict[int, set[int]] = {}  # term -> nodes that campaigned in it
        self.timeout_now: dict[int, int] = {}  # node -> term of the TimeoutNow it received
        self.edge_seen = False  # a two-voter configuration committed in this run
        self.fresh: list[int] = []  # leaders elected since the fault phase last looked
        full = list(range(1, params.full_voters + 1))
        nxt = params.full_voters + 1
        witnesses = [nxt] if params.witness else []
        nxt += len(witnesses)
        learners = list(range(nxt, nxt + params.learners))
        self.next_id = nxt + params.learners
        self.initial_conf = ConfState(
            frozenset(full + witnesses), frozenset(learners), frozenset(witnesses)
        )
        self.conf = self.initial_conf  # configuration as of the newest committed entry
        for i in full + witnesses + learners:
            self.spawn(i, witness=i in witnesses)

    # --- lifecycle ---------------------------------------------------------------------

    def spawn(self, node_id: int, *, witness: bool = False) -> SimNode:
        """Start a new node with empty storage bootstrapped from the initial configuration."""
        n = SimNode(node_id, MemoryStorage(self.initial_conf), witness)
        self.nodes[node_id] = n
        self._boot(n)
        self.trace.ev(self.now, "spawn", repr(n))
        return n

    def despawn(self, n: SimNode) -> None:
        """Forget a node that never became a member."""
        n.alive = False
        n.removed = True
        n.raft = None
        self.trace.ev(self.now, "despawn", f"n{n.id}")

    def _boot(self, n: SimNode) -> None:
        p = self.p
        snap = n.storage.snapshot()
        n.kv = KV() if snap.index == 0 else self._snap_state(n, snap.index).copy()
        n.applied = snap.index
        cfg = Config(
            id=n.id,
            election_tick=p.election_tick,
            heartbeat_tick=p.heartbeat_tick,
            pre_vote=p.pre_vote,
            check_quorum=p.check_quorum,
            max_size_per_msg=p.max_size_per_msg,
            max_entries_per_msg=p.max_entries_per_msg,
            max_inflight_msgs=p.max_inflight_msgs,
            applied=snap.index,
        )
        n.raft = Raft(cfg, n.storage, random.Random(self.rng.getrandbits(32)))
        n.alive = True
        n.deferred = False
        n.role = n.raft.role
        n.term = n.raft.term
        n.leader_term = 0
        n.floor = n.storage.payload_floor if n.witness else 0
        n.reads = []

    def crash(self, n: SimNode, why: str = "") -> None:
        """Kill ``n``: everything it did not persist (a deferred Ready) is lost."""
        n.alive = False
        n.raft = None
        n.role = Role.FOLLOWER
        n.leader_term = 0
        n.reads = []
        self.check.leader_req.pop(n.id, None)
        unpersisted = why.startswith("with an")
        self.stats["crash unpersisted" if unpersisted else "crash"] += 1
        if unpersisted:
            self.hit(self.stats, "crash with unpersisted ready")
        lead = self.leader()
        if lead is not None and lead.raft is not None:
            lr = lead.raft
            if lr.pending_conf_index > lr.log.committed:
                self.hit(self.stats, "crash during conf change")
        self.trace.ev(self.now, "crash", f"n{n.id} {why}".rstrip())

    def restart(self, n: SimNode) -> None:
        """Bring ``n`` back from its storage, with a state machine from its last snapshot."""
        self._boot(n)
        assert n.raft is not None
        st = n.raft.status()
        self.check.restarted(n.id, st.term, st.vote, st.commit)
        self.stats["restart"] += 1
        if st.vote != NONE:
            self.hit(self.stats, "vote survived restart")
        self.trace.ev(self.now, "restart", f"{n} hs={n.storage.hard_state}")
        self.after(n)

    def _snap_state(self, n: SimNode, index: int) -> KV:
        kv = self.snapdata.get(index)
        if kv is None:
            raise Violation("snapshot", f"node {n.id} needs state at snapshot {index}; none taken")
        return kv

    # --- queries --------------------------------------------------------------------------

    def live(self) -> list[SimNode]:
        """Nodes that are running."""
        return [n for n in self.nodes.values() if n.alive]

    def leader(self) -> SimNode | None:
        """The running leader with the highest term, if any."""
        best: SimNode | None = None
        for n in self.nodes.values():
            if n.alive and n.role is Role.LEADER and (best is None or n.term > best.term):
                best = n
        return best

    # --- events ------------------------------------------------------------------------

    def after(self, n: SimNode) -> None:
        """Observe ``n`` after an event; process (or defer) its Ready."""
        r = n.raft
        assert r is not None
        if r.role is not n.role or r.term != n.term:
            self._role_changed(n, r.role, r.term)
        defer = self.defer
        if defer and (defer >= 1.0 or self.rng.random() < defer):
            if not n.deferred:
                n.deferred = True
                self._pending.append(n)
            if self.crash_unpersisted and self.rng.random() < self.crash_unpersisted:
                self.crash(n, "with an unpersisted Ready")
            return
        if r.has_ready():
            self.handle_ready(n)

    def _role_changed(self, n: SimNode, role: Role, term: int) -> None:
        was, was_term = n.role, n.term
        n.role = role
        n.term = term
        if was is Role.LEADER and role is Role.FOLLOWER and term == was_term:
            r = n.raft
            assert r is not None
            if n.id not in r.conf_state.voters:
                self.hit(self.stats, "leader removed itself")
            elif not n.witness:
                self.hit(self.stats, "leader stepped down: check quorum")
        if role is Role.CANDIDATE:
            cands = self.candidates.setdefault(term, set())
            cands.add(n.id)
            if len(cands) == 2:
                self.hit(self.stats, "two candidates split vote")
        if role is Role.LEADER:
            self.check.leader_elected(n.id, term)
            self.stats["election"] += 1
            self.elections += 1
            self.elected_at[n.id] = self.now
            self.fresh.append(n.id)
            if self.timeout_now.pop(n.id, -1) == term - 1:
                self.hit(self.stats, "transfer completed")
            if n.witness:
                self.witness_led.append((term, n.id))
                self.witness_led_at.append(self.now)
                self.stats["witness led"] += 1
            elif n.raft is not None and n.id not in n.raft.conf_state.voters:
                self.hit(self.stats, "leader elected during its own removal")
            what = " (witness)" if n.witness else ""
            self.trace.ev(self.now, "leader", f"n{n.id} term {term}{what}")
        elif self.trace.full:
            self.trace.ev(self.now, "role", f"n{n.id} {role.value} term {term}")

    def flush(self) -> None:
        """Process deferred Readies and queued snapshot reports until none is left."""
        if not self._pending and not self._reports:
            return
        saved = self.defer
        try:
            for i in range(200):
                if i == 100:
                    # Deferral is random, so a node can be deferred over and over:
                    # finish the round for real.
                    self.defer = 0.0
                if self._pending:
                    pending, self._pending = self._pending, []
                    for n in pending:
                        n.deferred = False
                        if n.alive and n.raft is not None and n.raft.has_ready():
                            self.handle_ready(n)
                if self._reports:
                    reports, self._reports = self._reports, []
                    for frm, to, ok in reports:
                        s = self.nodes.get(frm)
                        if s is not None and s.alive and s.raft is not None:
                            s.raft.report_snapshot(to, ok)
                            self.after(s)
                if not self._pending and not self._reports:
                    return
        finally:
            self.defer = saved
        raise Violation("busy loop", "nodes keep producing Readies or reports within one round")

    def tick(self) -> None:
        """Advance logical time by one tick and deliver what is due."""
        self.now += 1
        if self._late_reports:
            self._reports.extend(self._late_reports)
            self._late_reports = []
        for n in list(self.nodes.values()):
            if n.alive:
                assert n.raft is not None
                n.raft.tick()
                self.after(n)
        self.flush()
        net = self.net
        rounds = 0
        while rounds < MAX_ROUNDS and net.has_due(self.now):
            self._deliver_round()
            rounds += 1

    def _deliver_round(self) -> None:
        msgs, lost = self.net.pop_due(self.now)
        full = self.trace.full
        for m in lost:
            if full:
                self.trace.ev(self.now, "cut", fmt_msg(m))
            if type(m) is SnapshotRequest:
                self._late_reports.append((m.frm, m.to, False))
                self.hit(self.stats, "snapshot install lost")
        nodes = self.nodes
        for m in msgs:
            n = nodes.get(m.to)
            if n is None or not n.alive or n.raft is None:
                if type(m) is SnapshotRequest:
                    self._late_reports.append((m.frm, m.to, False))
                continue
            if full:
                self.trace.ev(self.now, "deliver", fmt_msg(m))
            n.raft.step(m)
            self.after(n)
            tm = type(m)
            if tm is SnapshotRequest:
                self._reports.append((m.frm, m.to, True))
            elif tm is TimeoutNow:
                self.timeout_now[m.to] = m.term
                sender = nodes.get(m.frm)
                if sender is not None and sender.witness:
                    self.witness_handovers.append((self.now, m.frm, m.to))
        self.flush()

    def send(self, m: Message) -> None:
        """Hand a message to the network (after its Ready was persisted)."""
        tm = type(m)
        if tm is VoteResponse or tm is AppendResponse:
            check_backed(self, m)
        elif tm is AppendRequest:
            if m.entries and m.entries[0].data and self._is_witness(m.to):
                src = self.nodes[m.frm].raft
                if src is not None and len(src.conf_state.full_voters) == 1:
                    self.hit(self.stats, "witness payload mode, one full voter")
        elif tm is SnapshotRequest:
            dst = self.nodes.get(m.to)
            if dst is not None and dst.storage.last_index() == 0:
                self.hit(self.stats, "snapshot to a just-added member")
        copies = self.net.send(m, self.now)
        if copies == 0:
            if self.trace.full:
                self.trace.ev(self.now, "drop", fmt_msg(m))
            if tm is SnapshotRequest:
                self._late_reports.append((m.frm, m.to, False))
                self.hit(self.stats, "snapshot install lost")
        elif self.trace.full:
            self.trace.ev(self.now, "send", fmt_msg(m) + (" x2" if copies == 2 else ""))

    def _is_witness(self, nid: int) -> bool:
        n = self.nodes.get(nid)
        return n is not None and n.witness

    # --- Ready processing ---------------------------------------------------------------

    def handle_ready(self, n: SimNode) -> None:
        """Persist, send, apply and acknowledge one Ready of ``n``."""
        r = n.raft
        assert r is not None
        st = n.storage
        ck = self.check
        rd = r.ready()
        leader_term = n.leader_term if n.leader_term == r.term else 0
        snap = rd.snapshot
        messages = rd.messages
        if self.p.parallel_append and snap is None and messages and r.role is Role.LEADER:
            # The node driver's parallel append (Raft thesis 10.2.1): a leader's
            # appends and heartbeats leave before its own fsync when this Ready
            # changes neither term nor vote; a crash may then cut the fsync short.
            hs0, old = rd.hard_state, st.hard_state
            if hs0 is None or (hs0.term == old.term and hs0.vote == old.vote):
                later = []
                for m in messages:
                    if type(m) is AppendRequest or type(m) is Heartbeat:
                        self.send(m)
                    else:
                        later.append(m)
                messages = tuple(later)
                if rd.entries and self.crash_unpersisted and self.rng.random() < (
                    self.crash_unpersisted
                ):
                    self.crash(n, "with an unpersisted Ready (during the leader's fsync)")
                    return
        if snap is not None:
            if leader_term:
                raise Violation(
                    "leader append-only", f"leader {n.id} installs snapshot {snap.index}"
                )
            ck.snapshot_installed(n.id, snap.index, snap.term)
            if snap.index < n.applied:
                raise Violation(
                    "snapshot",
                    f"node {n.id} is handed snapshot {snap.index} below its applied index "
                    f"{n.applied}: its state machine would go back in time",
                )
            if snap.index > st.snapshot().index:
                st.apply_snapshot(snap)
                if not n.witness:
                    n.kv = self._snap_state(n, snap.index).copy()
                n.applied = snap.index
                self.stats["snapshot installed"] += 1
                self.hit(self.stats, "snapshot installed")
                self.trace.ev(self.now, "install", f"n{n.id} snapshot {snap.index}/{snap.term}")
        ents = rd.entries
        if ents:
            first = ents[0].index
            try:
                prev_term = st.term(first - 1)
            except (LogCompacted, LogUnavailable):
                prev_term = -1
            ck.appended(n.id, ents, prev_term, st.last_index(), leader_term)
            if first <= st.last_index():
                note_truncation(self, n, ents)
            if n.witness and n.floor and first <= n.floor:
                check_floor(n, ents)
            st.append(ents)
        hs = rd.hard_state
        if hs is not None:
            if leader_term:
                note_leader_commit(self, n, hs.commit, leader_term)
            rose = ck.hard_state(n.id, hs)
            st.set_hard_state(hs)
            if rose and hs.commit > ck.commit_index:
                self._commit_advanced(n, hs.commit)
        if ck.leader_req and n.id in ck.leader_req:
            self._check_leader_log(n, r.term)
        for m in messages:
            self.send(m)
        for e in rd.committed_entries:
            self._apply(n, e)
        for rs in rd.read_states:
            issue = ck.read_state(n.id, rs.index, rs.context)
            if issue is not None:
                if self.elections > issue.epoch:
                    self.hit(self.stats, "readindex across leader change")
                if n.witness:
                    raise Violation("witness read", f"witness {n.id} released read state {rs}")
                n.reads.append((rs.context, issue))
        if rd.payload_floor is not None:
            self._drop_payloads(n, rd.payload_floor)
        r.advance(rd)
        n.leader_term = r.term if r.role is Role.LEADER else 0
        if n.reads:
            self._serve_reads(n)

    def _check_leader_log(self, n: SimNode, term: int) -> None:
        st = n.storage
        index = self.check.required_for(n.id)
        try:
            term_at: int | None = st.term(index)
        except (LogCompacted, LogUnavailable):
            term_at = None
        self.check.leader_log(n.id, term, st.last_index(), st.snapshot().index, term_at)

    def _commit_advanced(self, n: SimNode, commit: int) -> None:
        st = n.storage
        old = self.check.commit_index
        try:
            term = st.term(commit)
        except (LogCompacted, LogUnavailable) as e:
            raise Violation("commit", f"node {n.id} commits {commit} beyond its log: {e}") from e
        self.check.committed(commit, term)
        lo = max(old + 1, st.first_index())
        if lo <= commit:
            assert n.raft is not None
            ents = st.entries(lo, commit + 1)
            why = f"committed via n{n.id}"
            try:
                self._check_copies(ents, why, len(n.raft.conf_state.voters))
            except Violation as e:
                if e.invariant != "payload copies":
                    raise
                # The configuration that committed may no longer be the
                # node's newest (seed 17740): judge again by the smallest one.
                self._check_copies(ents, why, fewest_voters(n, lo))

    def _check_copies(self, entries: list[Entry], why: str, voters: int = 99) -> None:
        """Every committed entry's payload is held by two members (or all, if fewer).

        Any member's durable copy counts, learners' too: the configuration that
        committed an entry may already have promoted a learner (a change takes
        effect when appended, before ``self.conf``, the committed one, sees it).
        """
        # Voters, not members: a single voter commits on its own copy (a learner
        # it has does not make the commit wait). ``voters``: the committing
        # node's configuration, which counts changes appended but not committed
        # (a removal down to one voter commits on the leader's copy alone).
        needed = min(2, len(self.conf.voters), voters)
        holders = [m for m in self.nodes.values() if not m.removed]
        seen = self.check.entries
        for e in entries:
            if e.type is not EntryType.NORMAL or e.data == b"":
                continue
            if e.data is None:
                # A witness's copy: the entry may be an empty no-op (nothing to hold).
                known = seen.get((e.index, e.term))
                if known is not None and known[2] == b"":
                    continue
            i = e.index
            count = 0
            names = []
            for m in holders:
                if holds(m, i, e.term):
                    count += 1
                    names.append(m.id)
            self.check.payload_copies(i, count, needed, f"{why}; holders {names}")

    def _apply(self, n: SimNode, e: Entry) -> None:
        # A witness is handed configuration entries only, so its indexes skip.
        expected = e.index if n.witness else n.applied + 1
        first = self.check.applied_entry(n.id, e, expected)
        n.applied = e.index
        if e.type is EntryType.CONF_CHANGE:
            if first:
                assert e.data is not None
                self._conf_committed(ConfChange.decode(e.data), e.index)
            return
        if n.witness:
            return  # a witness has no state machine
        data = e.data
        if data is None:
            raise Violation("payload copies", f"full node {n.id} applies {e.index} without payload")
        if data:
            n.kv.apply(e.index, data)
            if first:
                self.key_latest[decode_put(data)[0]] = e.index

    def _conf_committed(self, cc: ConfChange, index: int) -> None:
        self.conf = apply_conf_change(self.conf, cc)
        self.stats[f"committed {cc.type.name}"] += 1
        self._note_conf(cc)
        self.trace.ev(self.now, "conf", f"{cc.type.name} n{cc.node_id} committed at {index}: "
                      f"{fmt_conf(self.conf)}")
        if cc.type is ConfChangeType.REMOVE:
            gone = self.nodes.get(cc.node_id)
            if gone is not None and not gone.removed:
                # Shut it down only after the removal committed: every later
                # leader's configuration excludes it, so nobody needs it.
                gone.alive = False
                gone.removed = True
                gone.raft = None

    def _note_conf(self, cc: ConfChange) -> None:
        cs, hit, st = self.conf, self.hit, self.stats
        full = cs.full_voters
        if len(cs.voters) == 2:
            self.edge_seen = True
            hit(st, "two voters" if len(full) == 2 else "one full voter + witness")
        elif len(cs.voters) >= 3 and self.edge_seen:
            hit(st, "back from the edge")
        if cc.type is ConfChangeType.REMOVE:
            gone = self.nodes.get(cc.node_id)
            if gone is not None:
                if gone.witness:
                    hit(st, "witness removed")
                if not gone.alive and not gone.removed:
                    hit(st, "down member removed")

    def _drop_payloads(self, n: SimNode, floor: int) -> None:
        if not n.witness:
            raise Violation("payload floor", f"full node {n.id} was told payload floor {floor}")
        st = n.storage
        old = max(st.payload_floor, st.snapshot().index)
        st.drop_payloads(floor)
        self.stats["witness floor"] += 1
        self.hit(self.stats, "witness dropped payloads")
        n.floor = max(n.floor, floor)
        # Dropping must not leave a committed entry with a single copy.
        hi = min(floor, self.check.commit_index, st.last_index())
        lo = max(old + 1, st.first_index())
        if lo <= hi:
            self._check_copies(st.entries(lo, hi + 1), f"after witness n{n.id} dropped <= {floor}")

    def _serve_reads(self, n: SimNode) -> None:
        keep = []
        for ctx, issue in n.reads:
            if n.applied >= issue.read_index:
                self.check.read_served(ctx, issue, n.kv.written_at(issue.key))
                self.stats["read served"] += 1
                if issue.waited:
                    self.hit(self.stats, "read waited for first commit")
            else:
                keep.append((ctx, issue))
        n.reads = keep


