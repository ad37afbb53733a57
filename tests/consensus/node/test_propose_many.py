"""RaftNode.propose_many (one append, one future for many commands) and ProposalGroup."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_raft.consensus.node.apply import ProposalGroup, Proposals
from nexus_raft.errors import NexusRaftError, NotLeader, ProposalDropped, Unavailable
from nexus_raft.kv.commands import KVResult
from tests.consensus.node.harness import Cluster, put, value_of, wait_until


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_propose_many_appends_together_and_answers_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            before = leader.status().last_index
            commands = [put(f"many/{i}", b"v%d" % i) for i in range(50)]
            results = await leader.propose_many(commands)
            assert len(results) == 50
            revisions = []
            for r in results:
                assert isinstance(r, bytes), r
                decoded = KVResult.decode(r)
                assert decoded.ok
                revisions.append(decoded.revision)
            # One contiguous run of revisions (one per command), in the order given,
            # appended as one run of log entries.
            assert revisions == list(range(revisions[0], revisions[0] + 50))
            assert leader.status().last_index >= before + 50
            assert await leader.propose_many([]) == []
            for node in c.live():
                await wait_until(lambda n=node: value_of(n, "many/49") == b"v49")  # type: ignore[misc]
            follower = next(n for n in c.live() if n is not leader)
            await wait_until(lambda: follower.leader_id == leader.id, what="follower knows leader")
            with pytest.raises(NotLeader):
                await follower.propose_many([put("x", b"1")])
            with pytest.raises(TypeError, match="commands"):
                await leader.propose_many(b"not a list")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"commands\[1\]"):
                await leader.propose_many([b"ok", "text"])  # type: ignore[list-item]
        finally:
            await c.close()

    run(scenario())


def test_propose_many_rejects_an_oversized_command_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path, max_proposal_bytes=4096)
        try:
            await c.start_all()
            leader = await c.leader()
            results = await leader.propose_many(
                [put("a", b"1"), put("big", b"x" * 5000), put("b", b"2")]
            )
            assert isinstance(results[0], bytes) and isinstance(results[2], bytes)
            assert isinstance(results[1], NexusRaftError)
            assert value_of(leader, "b") == b"2"
            assert value_of(leader, "big") is None
        finally:
            await c.close()

    run(scenario())


def test_proposal_group_settles_each_slot_once() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[bytes | NexusRaftError]] = loop.create_future()
        group = ProposalGroup(3, fut)
        proposals = Proposals()
        proposals.add_to_group(10, 2, group, 0)
        proposals.add_to_group(11, 2, group, 1)
        proposals.add_to_group(12, 2, group, 2)
        lone: asyncio.Future[bytes] = loop.create_future()
        proposals.add(13, 2, lone)
        proposals.resolve(10, 2, b"r10")
        proposals.resolve(11, 3, b"other")  # another term's entry won index 11
        assert not fut.done()
        # index 12 is overwritten by a new leader's entry before it commits
        proposals.add(12, 3, loop.create_future())
        assert fut.done()
        r10, r11, r12 = fut.result()
        assert r10 == b"r10"
        assert isinstance(r11, ProposalDropped) and isinstance(r12, ProposalDropped)
        group.settle(0, b"late")  # the first outcome stays
        assert fut.result()[0] == b"r10"
        proposals.fail_all(Unavailable("stop"))
        assert isinstance(lone.exception(), Unavailable)
        empty: asyncio.Future[list[bytes | NexusRaftError]] = loop.create_future()
        ProposalGroup(0, empty)
        assert empty.result() == []

    run(body())
