"""Peer requests on a real RaftNode over real gRPC: answers pair with their own
requests, refused requests fail at once, read contexts survive restarts.

Requests are sent from the test with a plain RaftClient under a member's id,
as that member (or someone claiming to be it) would send them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nexus_raft.consensus import RaftNode
from nexus_raft.consensus.core.messages import HeartbeatResponse, Message
from nexus_raft.errors import TransportError
from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.client import RaftClient
from nexus_raft.transport.errors import DeadlineExceeded
from tests.consensus.node.harness import Cluster, put, value_of, wait_until


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def client_for(c: Cluster, node: RaftNode) -> RaftClient:
    return RaftClient(NodeAddress(node.id, c.peers[node.id]), cluster_id=c.cluster_id)


def pending_reads(node: RaftNode) -> int:
    d = node._driver
    assert d is not None
    return len(d.raft.read_only)


def requesters(node: RaftNode) -> int:
    """Reads waiting at ``node`` (a leader) for their heartbeat round, joined ones included."""
    d = node._driver
    assert d is not None
    return sum(len(p.requesters) for p in d.raft.read_only._pending.values())


async def timed(coro: object) -> tuple[float, object]:
    """(seconds taken, result or the exception raised) of awaiting ``coro``."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        out: object = await coro  # type: ignore[misc]
    except Exception as exc:
        out = exc
    return loop.time() - t0, out


def test_forwarded_read_answered_late_is_not_paired_with_votes_from_the_same_sender(
    tmp_path: Path,
) -> None:
    """A follower's read waits at the leader for a heartbeat round; meanwhile the
    same follower's heartbeat (refused: it claims to lead), pre-vote and vote
    arrive and are answered at once. Pairing answers by arrival order handed the
    VoteResponse to the read ("core answered a read index with VoteResponse")
    and left the vote waiting for the read's answer."""

    async def scenario() -> None:
        # check_quorum off: the leader keeps leading with its followers down,
        # so the read stays pending for as long as the test wants.
        c = Cluster(tmp_path, check_quorum=False)
        try:
            await c.start_all()
            leader = await c.leader()
            await leader.propose(put("k", b"1"))
            f, g = (n.id for n in c.live() if n is not leader)
            await c.stop(f)
            await c.stop(g)
            term = leader.status().term
            async with client_for(c, leader) as client:
                read = asyncio.ensure_future(
                    client.read_index(term, f, b"late-read", timeout=30.0)
                )
                await wait_until(lambda: pending_reads(leader) == 1, what="the read is pending")
                heartbeat = pb.AppendRequest(term=term, leader_id=f, heartbeat=True)
                took, out = await timed(client.append_entries(heartbeat, timeout=5.0))
                assert isinstance(out, TransportError) and not isinstance(out, DeadlineExceeded)
                assert took < 3.0, f"the refused heartbeat waited {took:.1f}s"
                took, pre = await timed(
                    client.request_vote(term + 1, f, 0, 0, pre_vote=True, timeout=5.0)
                )
                assert isinstance(pre, pb.VoteResponse), pre
                assert not pre.vote_granted and took < 3.0
                took, vote = await timed(client.request_vote(term, f, 0, 0, timeout=5.0))
                assert isinstance(vote, pb.VoteResponse), vote
                assert not vote.vote_granted and vote.term == term and took < 3.0
                assert not read.done(), "the read was answered before its heartbeat round"
                assert leader.is_leader and leader.status().term == term
                # f comes back: the round completes (or, if f campaigns first,
                # the read is refused) and the read gets its own answer.
                await c.start(f)
                answer = await asyncio.wait_for(read, 20.0)
                assert isinstance(answer, pb.ReadIndexResponse)
                assert answer.context == b"late-read"
                assert answer.reject or answer.index >= 1
        finally:
            await c.close()

    run(scenario())


def test_refused_appends_from_a_forger_do_not_stall_replication_to_the_follower(
    tmp_path: Path,
) -> None:
    """Issue #15's row: 200 AppendEntries under the real leader's id and term whose
    entries would overwrite committed ones, sent to a follower while the leader
    writes. Each is refused at once (the boundary checks refuse their shape), and
    the follower keeps replicating: with the third member down, every write needs
    its answers. It used to stop replicating for 38 s ("no answer from the core
    within 10.0s")."""

    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            for i in range(10):
                await leader.propose(put(f"k/{i}", b"v"))
            await c.wait_applied(leader.status().commit)
            follower, other = (n for n in c.live() if n is not leader)
            await c.stop(other.id)  # every commit needs the follower's answers now
            st = follower.status()
            term = leader.status().term
            forged = pb.Entry(index=1, term=term, type=pb.NORMAL, data=put("forged", b"x"),
                              has_data=True)
            async with client_for(c, follower) as client:

                async def forge() -> tuple[float, object]:
                    req = pb.AppendRequest(
                        term=term, leader_id=leader.id, prev_log_index=st.last_index,
                        prev_log_term=term, entries=[forged], leader_commit=st.commit,
                    )
                    return await timed(client.append_entries(req, timeout=8.0))

                attempts = asyncio.gather(*(forge() for _ in range(200)))
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                for i in range(20):
                    await leader.propose(put(f"after/{i}", b"w"), timeout=8.0)
                took = loop.time() - t0
                assert took < 4.0, f"20 writes took {took:.1f}s: the follower stopped answering"
                results = await attempts
            for took, out in results:
                assert isinstance(out, TransportError), out
                assert not isinstance(out, DeadlineExceeded), "a refused append was parked"
                assert took < 6.0
            assert value_of(follower, "forged") is None
            await wait_until(lambda: value_of(follower, "after/19") == b"w")
            assert follower.status().term == term
        finally:
            await c.close()

    run(scenario())


def test_requests_the_core_refuses_fail_at_once_and_leave_the_senders_reads_working(
    tmp_path: Path,
) -> None:
    """200 heartbeats to the leader under a follower's id, in the leader's own
    term: well-formed, so they reach the core, which refuses them (a leader never
    gets a heartbeat of its own term). Each used to wait 10 s for an answer that
    never came while holding a slot in that follower's queue of answers, so the
    leader's answers to the follower's real forwarded reads went to the forged
    heartbeats and the follower's reads failed. Now each is refused at once."""

    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            await leader.propose(put("k", b"v"))
            follower = next(n for n in c.live() if n is not leader)
            await wait_until(lambda: follower.leader_id == leader.id, what="f follows")
            term = leader.status().term
            async with client_for(c, leader) as client:
                beat = pb.AppendRequest(term=term, leader_id=follower.id, heartbeat=True)
                results = await asyncio.gather(
                    *(timed(client.append_entries(beat, timeout=8.0)) for _ in range(200))
                )
            for took, out in results:
                assert isinstance(out, TransportError), out
                assert not isinstance(out, DeadlineExceeded), "a refused heartbeat was parked"
                assert took < 6.0
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for _ in range(20):
                await follower.read_index(timeout=8.0)
            took = loop.time() - t0
            assert took < 4.0, f"20 reads took {took:.1f}s"
            assert leader.is_leader and leader.status().term == term
        finally:
            await c.close()

    run(scenario())


def test_read_after_restart_is_not_answered_by_a_pre_restart_pending_read(
    tmp_path: Path,
) -> None:
    """A follower forwards a read and dies; the answers to the leader's heartbeat
    round for it are lost, so the read stays pending at the leader. The follower
    restarts, a write commits, and it reads again. Its contexts were (id, counter
    from 1), so the new read had the pending read's context: the leader joined
    them and answered the new read with the index recorded before the write (a
    stale read). A random per-start part keeps the two contexts apart."""

    async def scenario() -> None:
        c = Cluster(tmp_path, check_quorum=False)
        try:
            await c.start_all()
            leader = await c.leader()
            await leader.propose(put("k", b"old"))
            await c.wait_applied(leader.status().commit)
            fid = next(n.id for n in c.live() if n is not leader)
            # The context the follower's next read carries: the one it sent to
            # the leader just before it died.
            pre_restart_ctx = c.nodes[fid]._read_context()
            await c.stop(fid)
            d = leader._driver
            assert d is not None
            deliver = d.deliver

            def lossy(m: Message) -> None:  # the round's heartbeat answers are lost
                if not (isinstance(m, HeartbeatResponse) and m.context == pre_restart_ctx):
                    deliver(m)

            d.deliver = lossy  # type: ignore[method-assign]
            term = leader.status().term
            async with client_for(c, leader) as client:
                stale = asyncio.ensure_future(
                    client.read_index(term, fid, pre_restart_ctx, timeout=30.0)
                )
                await wait_until(lambda: requesters(leader) == 1, what="the old read is pending")
                follower = await c.start(fid)
                await wait_until(lambda: follower.leader_id == leader.id, what="f follows")
                await leader.propose(put("k", b"new"))
                fresh = leader.status().commit
                read = asyncio.ensure_future(follower.read_index(timeout=20.0))
                await wait_until(lambda: read.done() or requesters(leader) == 2,
                                 what="the new read at the leader")
                d.deliver = deliver  # type: ignore[method-assign]  # the network heals
                index = await read
                assert index >= fresh, f"read answered with index {index}, before {fresh}"
                assert value_of(follower, "k") == b"new"
                await asyncio.wait_for(stale, 20.0)
        finally:
            await c.close()

    run(scenario())
