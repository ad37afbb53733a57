"""What happens to a cluster each tick: faults, client requests, membership churn.

``inject`` draws, from the seed's generator and the seed's rates, the events of
one tick of the fault phase. The operations themselves are small functions
over :class:`~tests.sim.cluster.Cluster` so scripted scenarios reuse them.
"""

from __future__ import annotations

from nexus_raft.consensus.core.messages import (
    Accepted,
    ConfChange,
    ConfChangeType,
    EntryType,
    Rejected,
    RejectReason,
    Role,
)
from tests.sim.checker import ReadIssue, Violation
from tests.sim.cluster import Cluster
from tests.sim.fmt import fmt_conf
from tests.sim.kv import encode_put
from tests.sim.node import SimNode, durable_prefix
from tests.sim.params import MAX_CLIENT_BACKLOG
from tests.sim.situations import SITUATIONS

hit = SITUATIONS.hit

MAX_VOTERS = 5
MAX_MEMBERS = 7
# The rule of issue 10 item 1 (etcd's): no conf change before the leader's first
# entry commits. Checked directly, on top of the safety checks it protects.
CHECK_CONF_GUARD = True
MAX_CHURN = 6  # membership changes per seed (per phase of a long seed), so runs stay small


class Ops:
    """Client, fault and membership operations on one cluster."""

    __slots__ = ("c", "churned", "max_churn", "restart_at", "value")

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.value = 0  # makes every written value unique
        self.churned = 0
        self.max_churn = MAX_CHURN
        self.restart_at: dict[int, int] = {}  # crashed node -> tick it comes back

    # --- the fault phase ---------------------------------------------------------------

    def inject(self) -> None:
        """Draw this tick's events."""
        c = self.c
        p = c.p
        r = c.rng.random
        for nid, at in list(self.restart_at.items()):
            if at <= c.now:
                del self.restart_at[nid]
                n = c.nodes[nid]
                if not n.removed and not n.alive:
                    c.restart(n)
        if c.fresh:
            self.fresh_leader()
        if p.p_partition and r() < p.p_partition:
            self.partition()
        if c.net.cut and r() < p.p_heal:
            c.net.heal()
            c.trace.ev(c.now, "heal", "all links")
        if p.p_crash and r() < p.p_crash:
            self.crash_random()
        if p.p_churn and r() < p.p_churn:
            self.churn()
        if p.p_transfer and r() < p.p_transfer:
            self.transfer()
        if p.p_snapshot and r() < p.p_snapshot:
            self.snapshot_random()
        if r() < p.p_propose:
            self.propose(c.rng.randint(1, p.max_batch))
        if p.p_read and r() < p.p_read:
            self.read()

    def fresh_leader(self) -> None:
        """Aim at a leader elected this tick: a change, a transfer or a cut before it commits."""
        c = self.c
        fresh, c.fresh = c.fresh, []
        r = c.rng.random
        for nid in fresh:
            n = c.nodes[nid]
            if not self.leader_is(n):
                continue
            if r() < c.p.p_fresh_churn:
                self.churn()
            if r() < c.p.p_fresh_transfer:
                self.transfer()
            if r() < c.p.p_fresh_isolate and self.leader_is(n):
                assert n.raft is not None
                lg = n.raft.log
                c.net.isolate(nid, list(c.nodes))
                c.trace.ev(c.now, "isolate", f"n{nid} (fresh leader)")
                if lg.term_or_zero(lg.committed) != n.raft.term:
                    hit(c.stats, "fresh leader isolated")

    # --- faults -------------------------------------------------------------------------

    def partition(self) -> None:
        """Cut the network: a split, an isolated node, or one-way links."""
        c = self.c
        ids = [n.id for n in c.nodes.values() if not n.removed]
        rng = c.rng
        kind = rng.random()
        if kind < 0.4 and len(ids) >= 2:
            rng.shuffle(ids)
            k = rng.randint(1, len(ids) - 1)
            c.net.partition([ids[:k], ids[k:]])
            c.stats["partition"] += 1
            c.trace.ev(c.now, "partition", f"{sorted(ids[:k])} | {sorted(ids[k:])}")
        elif kind < 0.7:
            victim = rng.choice(ids)
            inbound = rng.random() < 0.8
            outbound = not inbound or rng.random() < 0.8
            c.net.isolate(victim, ids, inbound=inbound, outbound=outbound)
            c.stats["isolate" if inbound and outbound else "one-way isolate"] += 1
            c.trace.ev(c.now, "isolate", f"n{victim} in={inbound} out={outbound}")
        else:
            for _ in range(rng.randint(1, 3)):
                a, b = rng.sample(ids, 2) if len(ids) >= 2 else (ids[0], ids[0])
                if a != b:
                    c.net.cut_link(a, b)
                    c.stats["one-way cut"] += 1
                    c.trace.ev(c.now, "cut", f"{a}->{b} (one way)")

    def crash_random(self) -> None:
        """Crash a running node and schedule its restart."""
        c = self.c
        live = c.live()
        if not live:
            return
        n = c.rng.choice(live)
        c.crash(n)
        self.restart_at[n.id] = c.now + c.rng.randint(1, 6 * c.p.election_tick)

    def restart_all(self) -> None:
        """Restart every crashed node that is still a member."""
        c = self.c
        self.restart_at.clear()
        for n in list(c.nodes.values()):
            if not n.alive and not n.removed:
                c.restart(n)

    # --- clients --------------------------------------------------------------------------

    def _client_target(self) -> SimNode | None:
        c = self.c
        leader = c.leader()
        if leader is not None and c.rng.random() < 0.85:
            return leader
        live = c.live()
        return c.rng.choice(live) if live else None

    def propose(self, count: int, target: SimNode | None = None) -> list[Accepted]:
        """Propose ``count`` unique puts on ``target`` (default: usually the leader)."""
        c = self.c
        n = target if target is not None else self._client_target()
        if n is None or n.raft is None:
            return []
        if target is None and n.role is Role.LEADER:
            hs = c.check.hard.get(n.id)
            if n.storage.last_index() - (hs.commit if hs else 0) >= MAX_CLIENT_BACKLOG:
                c.stats["client backed off"] += 1
                return []
        keys = c.p.keys
        accepted = []
        for _ in range(count):
            self.value += 1
            data = encode_put(b"k%d" % (self.value % keys), self.value)
            out = n.raft.propose(data)
            if isinstance(out, Accepted):
                if n.witness:
                    raise Violation("witness proposal", f"witness {n.id} accepted {data!r}: {out}")
                accepted.append(out)
            elif not isinstance(out, Rejected):
                raise Violation("propose outcome", f"n{n.id} propose returned {out!r}")
            elif n.witness and n.role is Role.LEADER:
                c.stats["witness leader refused proposal"] += 1
        if accepted and c.trace.full:
            c.trace.ev(c.now, "propose", f"n{n.id} {len(accepted)} at {accepted[0].index}..")
        c.after(n)
        return accepted

    def read(self) -> None:
        """Issue a ReadIndex for a random key on a (usually leading) node."""
        c = self.c
        n = self._client_target()
        if n is None or n.raft is None:
            return
        self.value += 1
        ctx = b"r%d" % self.value
        key = b"k%d" % c.rng.randrange(c.p.keys)
        out = n.raft.read_index(ctx)
        if isinstance(out, Rejected):
            if n.witness:
                c.stats["witness refused read"] += 1
            return
        if n.witness:
            if n.id in n.raft.status().conf_state.witnesses:
                raise Violation("witness read", f"witness {n.id} accepted read {ctx!r}: {out}")
            # A witness that has not yet seen the entry adding it is a plain
            # non-member to its core; its driver would refuse reads itself.
            return
        issue = ReadIssue(n.id, key, c.check.commit_index, c.key_latest.get(key, 0), c.now,
                          epoch=c.elections)
        if n.role is Role.LEADER:
            lg = n.raft.log
            issue.waited = lg.term_or_zero(lg.committed) != n.raft.term
        c.check.read_issued(ctx, issue)
        c.after(n)

    # --- membership, transfers, snapshots ---------------------------------------------------

    def churn(self) -> None:
        """Propose one random single-server membership change on the leader.

        Reaches the edges: down to two voters (two full, or one full voter
        plus a witness) and back, removing the leader, the witness or a down
        member; the core must refuse what is unsafe.
        """
        c = self.c
        leader = c.leader()
        if leader is None or leader.witness or self.churned >= self.max_churn:
            return
        assert leader.raft is not None
        lr = leader.raft
        cs = lr.status().conf_state
        full = cs.full_voters
        choices: list[str] = []
        members = len(cs.members)
        if len(cs.voters) < MAX_VOTERS and members < MAX_MEMBERS:
            choices.append("add-voter")
            if not cs.witnesses:
                choices.append("add-witness")
                if len(cs.voters) == 1:
                    choices.append("add-witness")  # towards 1 full + witness more often
        if len(cs.learners) < 2 and members < MAX_MEMBERS:
            choices.append("add-learner")
        if cs.learners and len(cs.voters) < MAX_VOTERS:
            choices.append("promote")
        if cs.learners:
            choices.append("remove-learner")
        if (len(cs.voters) >= 3 and len(full) >= 2) or (len(full) == 2 and not cs.witnesses):
            # May leave 2 full voters, 1 full + witness (the core refuses it when a
            # committed entry would keep one copy), or one voter, which a witness
            # can then join: the only safe way to 1 full + witness.
            choices.append("remove-voter")
        if cs.witnesses and len(cs.voters) >= 3:
            choices.append("remove-witness")
        if not choices:
            return
        rng = c.rng
        what = rng.choice(choices)
        spawned: SimNode | None = None
        if what in ("add-voter", "add-witness", "add-learner"):
            nid = c.next_id
            c.next_id += 1
            spawned = c.spawn(nid, witness=what == "add-witness")
            kind = {
                "add-voter": ConfChangeType.ADD_VOTER,
                "add-witness": ConfChangeType.ADD_WITNESS,
                "add-learner": ConfChangeType.ADD_LEARNER,
            }[what]
            cc = ConfChange(kind, nid)
        elif what == "promote":
            cc = ConfChange(ConfChangeType.ADD_VOTER, rng.choice(sorted(cs.learners)))
        elif what == "remove-learner":
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(sorted(cs.learners)))
        elif what == "remove-witness":
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(sorted(cs.witnesses)))
        else:
            down = sorted(i for i in full if i in c.nodes and not c.nodes[i].alive)
            x = rng.random()
            if down and x < 0.4:
                pool = down  # a down member
            elif x < 0.75:
                pool = sorted(full - {leader.id})
            else:
                pool = [leader.id]  # the leader removes itself
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(pool))
        first_uncommitted = lr.log.term_or_zero(lr.log.committed) != lr.term
        out = lr.propose_conf_change(cc)
        c.trace.ev(c.now, "confchange", f"n{leader.id} {what} {cc.type.name} n{cc.node_id} "
                   f"on {fmt_conf(cs)} -> {out}")
        if isinstance(out, Accepted):
            self.churned += 1
            lg = lr.log
            pending = [e.index for e in lg.entries(max(lg.committed + 1, lg.first_index()),
                                                   lg.last_index() + 1)
                       if e.type is EntryType.CONF_CHANGE]
            if len(pending) > 1:
                raise Violation(
                    "one conf change at a time",
                    f"leader n{leader.id} accepted {cc} with conf entries {pending} uncommitted "
                    f"(commit {lg.committed})",
                )
            if c.now - c.elected_at.get(leader.id, -(10**9)) <= 2 * c.p.election_tick:
                hit(c.stats, "conf accepted right after election")
            if first_uncommitted and CHECK_CONF_GUARD:
                raise Violation(
                    "conf change before first commit",
                    f"leader n{leader.id} (term {lr.term}) accepted {cc} at {out.index} before "
                    f"an entry of its term committed (commit {lr.log.committed})",
                )
            if cc.type is ConfChangeType.REMOVE and cs.witnesses and cc.node_id in cs.voters:
                self._check_removal(leader, cc.node_id, full)
            transfer = c.rng.random() < c.p.p_transfer_in_change
        else:
            transfer = False
            if out.reason is RejectReason.LEADER_NOT_READY or (
                out.reason is RejectReason.CONF_CHANGE_PENDING and first_uncommitted
            ):
                hit(c.stats, "conf refused: first entry uncommitted")
            elif out.reason is RejectReason.CONF_CHANGE_PENDING:
                hit(c.stats, "conf refused: change pending")
            if spawned is not None:
                c.despawn(spawned)
        c.after(leader)
        if transfer:
            self.transfer()

    def _check_removal(self, leader: SimNode, nid: int, full: frozenset[int]) -> None:
        """With a witness, an accepted removal leaves every committed entry on two
        full members that stay (README, "Removing members: what is guaranteed")."""
        c = self.c
        assert leader.raft is not None
        commit = leader.raft.log.committed
        held: list[tuple[int, int]] = []
        for v in sorted(full - {nid}):
            m = c.nodes.get(v)
            p = durable_prefix(m, leader, commit) if m is not None else 0
            if p is None:
                return  # the leader's log cannot tell any more: no verdict
            held.append((p, v))
        held.sort(reverse=True)
        second = held[1][0] if len(held) > 1 else 0
        if second < commit:
            raise Violation(
                "unsafe removal accepted",
                f"leader n{leader.id} accepted removing n{nid} with commit {commit}; the full "
                f"members left hold durably up to {held} (fewer than two copies past {second})",
            )
        c.stats["removal with a witness checked"] += 1

    def transfer(self) -> None:
        """Ask the leader to hand leadership to another voter (rarely the witness)."""
        c = self.c
        leader = c.leader()
        if leader is None:
            return
        assert leader.raft is not None
        cs = leader.raft.status().conf_state
        pool = sorted(cs.voters - {leader.id})
        if not pool:
            return
        if c.rng.random() < 0.9 and (cs.full_voters - {leader.id}):
            pool = sorted(cs.full_voters - {leader.id})
        target = c.rng.choice(pool)
        lg = leader.raft.log
        if leader.raft.pending_conf_index > lg.committed:
            hit(c.stats, "transfer during conf change")
        out = leader.raft.transfer_leadership(target)
        c.trace.ev(c.now, "transfer", f"n{leader.id} -> n{target}: {out}")
        c.stats["transfer requested"] += 1
        c.after(leader)

    def snapshot_random(self) -> None:
        """A running full node snapshots its state machine and compacts its log."""
        c = self.c
        pool = [n for n in c.live() if not n.witness and n.applied > n.storage.snapshot().index]
        if pool:
            self.snapshot(c.rng.choice(pool))

    def snapshot(self, n: SimNode) -> None:
        """``n`` snapshots at its applied index (its state machine's state right now)."""
        c = self.c
        index = n.applied
        if index <= n.storage.snapshot().index:
            return
        known = c.snapdata.get(index)
        if known is None:
            c.snapdata[index] = n.kv.copy()
        elif known != n.kv:
            raise Violation(
                "state machine safety",
                f"node {n.id} state at {index} differs from an earlier snapshot at {index}",
            )
        meta = n.storage.create_snapshot(index)
        c.stats["snapshot taken"] += 1
        c.trace.ev(c.now, "snapshot", f"n{n.id} at {meta.index}/{meta.term}")

    def leader_is(self, n: SimNode) -> bool:
        """Whether ``n`` is running and leads."""
        return n.alive and n.role is Role.LEADER
