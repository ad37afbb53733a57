"""Follower forwarding on real RaftNodes: proposals and admin calls through a follower."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_raft.consensus.node.forward import serve_forward
from nexus_raft.consensus.node.wire import pb
from nexus_raft.errors import (
    InvalidArgument,
    NotLeader,
    Timeout,
    TooLarge,
    Unavailable,
)
from nexus_raft.kv.commands import KVResult
from tests.consensus.node.harness import Cluster, put, value_of, wait_until


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def _kinds(node: object) -> dict[int, str]:
    return {m.id: m.kind for m in node.status().members}  # type: ignore[attr-defined]


def test_a_follower_forwards_proposals_to_the_leader(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n for n in c.live() if n is not leader)
            with pytest.raises(NotLeader):
                await follower.propose(put("plain", b"x"))
            raw = await follower.propose(put("a", b"1"), forward=True)
            assert KVResult.decode(raw).ok
            assert value_of(leader, "a") == b"1"
            outcomes = await follower.propose_many(
                [put(f"m{i}", b"v") for i in range(50)], forward=True
            )
            assert all(isinstance(o, bytes) and KVResult.decode(o).ok for o in outcomes)
            revisions = [KVResult.decode(o).revision for o in outcomes]  # type: ignore[arg-type]
            assert revisions == sorted(revisions) and len(set(revisions)) == 50
            assert await follower.propose_many([], forward=True) == []
            await wait_until(lambda: value_of(follower, "m49") == b"v", what="follower applies")
        finally:
            await c.close()

    run(scenario())


def test_forwarded_groups_above_one_message_are_split(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n for n in c.live() if n is not leader)
            # Twelve 900 KiB commands: more than one 8 MiB forward message.
            big = [put(f"big{i}", bytes([i]) * (900 << 10)) for i in range(12)]
            outcomes = await follower.propose_many(big, forward=True, timeout=20.0)
            assert [KVResult.decode(o).ok for o in outcomes] == [True] * 12  # type: ignore[arg-type]
            assert value_of(leader, "big11") == b"\x0b" * (900 << 10)
            # One command over the leader's proposal limit: refused, named.
            huge = put("huge", b"x" * (9 << 20))
            with pytest.raises(TooLarge):
                await follower.propose(huge, forward=True, timeout=20.0)
        finally:
            await c.close()

    run(scenario())


def test_admin_calls_are_forwarded(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n for n in c.live() if n is not leader)
            spare = f"127.0.0.1:{c.spare_ports[0]}"
            await follower.add_member(4, spare, "learner", forward=True)
            assert _kinds(leader)[4] == "learner"
            with pytest.raises(InvalidArgument, match="already"):
                await follower.add_member(4, spare, "witness", forward=True)
            await follower.remove_member(4, forward=True)
            assert 4 not in _kinds(leader)
            await leader.propose(put("s", b"1"))
            index = await follower.snapshot(forward=True)
            assert index >= 1 and leader.status().snapshot_index == index
            assert follower.status().snapshot_index < index  # the leader's, not its own
            target = next(n for n in c.live() if n not in (leader, follower))
            await follower.transfer_leadership(target.id, forward=True)
            assert target.is_leader
            raw = await leader.propose(put("after", b"2"), forward=True)  # old leader forwards
            assert KVResult.decode(raw).ok
        finally:
            await c.close()

    run(scenario())


def test_a_forward_to_a_node_that_does_not_lead_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n for n in c.live() if n is not leader)
            await wait_until(lambda: follower.leader_id == leader.id, what="follower knows")
            request = pb.ForwardRequest(propose=pb.ForwardPropose(commands=[put("x", b"1")]))
            resp = await serve_forward(follower, request)
            assert resp.error.code == pb.FORWARD_NOT_LEADER
            assert resp.error.leader_id == leader.id
            assert not resp.results
            assert value_of(leader, "x") is None
            empty = await serve_forward(leader, pb.ForwardRequest())
            assert empty.error.code == pb.FORWARD_INVALID
        finally:
            await c.close()

    run(scenario())


def test_forwarding_fails_fast_when_the_leader_is_gone(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n for n in c.live() if n is not leader)
            await c.stop(leader.id)
            loop = asyncio.get_running_loop()
            start = loop.time()
            # The follower still names the dead leader (or no leader, or the
            # next one): the call fails or succeeds, but never hangs.
            try:
                await follower.propose(put("y", b"1"), forward=True, timeout=3.0)
            except (Unavailable, Timeout, NotLeader):
                pass
            assert loop.time() - start < 3.5
            # A new leader is elected among the two left; forwarding works again.
            new = await c.leader()
            other = next(n for n in c.live() if n is not new)
            raw = await other.propose(put("z", b"2"), forward=True, timeout=5.0)
            assert KVResult.decode(raw).ok
        finally:
            await c.close()

    run(scenario())
