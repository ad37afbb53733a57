"""Proposals that reach the leader together become one log entry (GroupsCommands).

Real nodes (LevelDB, gRPC on loopback) in one process with the KV state
machine, which groups; and a state machine without the two methods, which
keeps one entry per proposal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from nexus_raft.consensus.node.apply import SplitWaiter
from nexus_raft.consensus.node.attributes import MemberAttributes, encode_publish
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.consensus.state_machine import GroupsCommands
from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.commands import KVResult
from nexus_raft.kv.state_machine import KVStateMachine
from tests.consensus.node.harness import Cluster, put, value_of, wait_until


def test_concurrent_proposals_share_entries_and_each_gets_its_result(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            assert isinstance(leader.state_machine, GroupsCommands)
            before = leader.status().last_index
            results = await asyncio.gather(
                *(leader.propose(put(f"g/{i}", b"v%d" % i)) for i in range(200))
            )
            decoded = [KVResult.decode(r) for r in results]
            assert all(r.ok for r in decoded)
            # 200 writes, 200 distinct revisions, in far fewer log entries.
            assert len({r.revision for r in decoded}) == 200
            appended = leader.status().last_index - before
            assert appended < 50, appended
            for node in c.live():
                await wait_until(lambda n=node: value_of(n, "g/199") == b"v199")  # type: ignore[misc]
                assert value_of(node, "g/0") == b"v0"
            # A lone proposal is a plain entry, as before.
            one = KVResult.decode(await leader.propose(put("lone", b"1")))
            assert one.ok and one.revision == max(r.revision for r in decoded) + 1
        finally:
            await c.close()

    asyncio.run(scenario())


class _NoGroups(KVStateMachine):
    """The KV state machine without the grouping methods (like any other state machine).

    A protocol member set to None does not count as implemented.
    """

    group_commands = None  # type: ignore[assignment]
    split_group_result = None  # type: ignore[assignment]


def test_a_state_machine_that_cannot_group_gets_one_entry_per_proposal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.consensus.node.harness as harness

    monkeypatch.setattr(harness, "KVStateMachine", _NoGroups)

    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader: RaftNode = await c.leader()
            assert not isinstance(leader.state_machine, GroupsCommands)
            before = leader.status().last_index
            await asyncio.gather(*(leader.propose(put(f"n/{i}", b"v")) for i in range(30)))
            # (the members may append an entry or two of their own meanwhile)
            assert leader.status().last_index - before >= 30
        finally:
            await c.close()

    asyncio.run(scenario())


def test_a_group_entry_settles_every_proposer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def split(result: bytes, count: int) -> list[bytes]:
            parts = result.split(b",")
            if len(parts) != count:
                raise ValueError("wrong count")
            return parts

        futs: Sequence[asyncio.Future[bytes]] = [loop.create_future() for _ in range(3)]
        SplitWaiter(list(futs), split).settle(0, b"a,b,c")
        assert [f.result() for f in futs] == [b"a", b"b", b"c"]
        futs = [loop.create_future() for _ in range(2)]
        SplitWaiter(list(futs), split).settle(0, b"only-one")
        for f in futs:
            with pytest.raises(NexusRaftError, match="malformed"):
                f.result()
        futs = [loop.create_future() for _ in range(2)]
        SplitWaiter(list(futs), split).settle(0, NexusRaftError("dropped"))
        assert all(isinstance(f.exception(), NexusRaftError) for f in futs)

    asyncio.run(scenario())


def test_member_attributes_proposed_among_client_writes_are_never_grouped(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            # The leader's own publication first: applied after the rename, it
            # would undo it (it may still be in flight here, or being retried).
            await c.published()
            attrs = MemberAttributes("renamed", ("http://127.0.0.1:9999",))
            publish = encode_publish(leader.id, attrs)
            results = await asyncio.gather(
                *(leader.propose(put(f"a/{i}", b"v")) for i in range(20)),
                leader.propose(publish),
                *(leader.propose(put(f"b/{i}", b"v")) for i in range(20)),
            )
            assert all(KVResult.decode(r).ok for i, r in enumerate(results) if i != 20)

            def renamed() -> bool:
                me = next(m for m in leader.status().members if m.id == leader.id)
                return me.name == "renamed"

            await wait_until(renamed, what="the attributes entry applied by the node")
        finally:
            await c.close()

    asyncio.run(scenario())
