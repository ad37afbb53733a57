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
    Rejected,
    Role,
)
from tests.sim.checker import ReadIssue, Violation
from tests.sim.cluster import Cluster
from tests.sim.fmt import fmt_conf
from tests.sim.kv import encode_put
from tests.sim.node import SimNode
from tests.sim.params import MAX_CLIENT_BACKLOG

MAX_VOTERS = 5
MAX_MEMBERS = 7
MAX_CHURN = 6  # membership changes per seed, so runs stay small


class Ops:
    """Client, fault and membership operations on one cluster."""

    __slots__ = ("c", "churned", "restart_at", "value")

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.value = 0  # makes every written value unique
        self.churned = 0
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
        issue = ReadIssue(n.id, key, c.check.commit_index, c.key_latest.get(key, 0), c.now)
        c.check.read_issued(ctx, issue)
        c.after(n)

    # --- membership, transfers, snapshots ---------------------------------------------------

    def churn(self) -> None:
        """Propose one random single-server membership change on the leader."""
        c = self.c
        leader = c.leader()
        if leader is None or leader.witness or self.churned >= MAX_CHURN:
            return
        assert leader.raft is not None
        cs = leader.raft.status().conf_state
        full = cs.full_voters
        choices: list[str] = []
        members = len(cs.members)
        if len(cs.voters) < MAX_VOTERS and members < MAX_MEMBERS:
            choices.append("add-voter")
            if not cs.witnesses:
                choices.append("add-witness")
        if len(cs.learners) < 2 and members < MAX_MEMBERS:
            choices.append("add-learner")
        if cs.learners and len(cs.voters) < MAX_VOTERS:
            choices.append("promote")
        if cs.learners:
            choices.append("remove-learner")
        if len(cs.voters) > 3 and len(full) > 2:
            choices.append("remove-voter")
        if cs.witnesses and len(cs.voters) > 3:
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
            # Mostly a follower; sometimes the leader removes itself.
            pool = sorted(full - {leader.id}) if rng.random() < 0.85 else [leader.id]
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(pool))
        out = leader.raft.propose_conf_change(cc)
        c.trace.ev(c.now, "confchange", f"n{leader.id} {what} {cc.type.name} n{cc.node_id} "
                   f"on {fmt_conf(cs)} -> {out}")
        if isinstance(out, Accepted):
            self.churned += 1
        elif spawned is not None:
            c.despawn(spawned)
        c.after(leader)

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
