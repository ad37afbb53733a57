"""How the etcd front end groups requests: read-index rounds and write groups (logic only).

A stand-in node records the calls; the rules under test are ordering
rules (a read never uses a round that started before it arrived; each
write gets its own outcome), not Raft's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from nexus_raft.errors import NexusRaftError, NotLeader, ProposalDropped
from nexus_raft.kv.etcd.base import ReadRounds, WriteGroups


class Node:
    """Read-index rounds that finish when the test says so; recorded write groups."""

    def __init__(self) -> None:
        self.rounds: list[asyncio.Event] = []
        self.groups: list[list[bytes]] = []

    async def read_index(self, *, timeout: float) -> int:
        gate = asyncio.Event()
        self.rounds.append(gate)
        number = len(self.rounds)
        await gate.wait()
        return number

    async def propose_many(self, commands: Sequence[bytes], *, timeout: float,
                           forward: bool) -> list[bytes | NexusRaftError]:
        assert forward
        self.groups.append(list(commands))
        if len(self.groups) == 1 and b"moved" in commands:
            # Leadership moved: nothing of this group was appended.
            return [NotLeader("not the leader", leader_id=2)] * len(commands)
        return [ProposalDropped("lost") if c == b"bad" else c.upper() for c in commands]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_reads_arriving_during_a_round_wait_for_the_next_one() -> None:
    async def main() -> None:
        node = Node()
        rounds = ReadRounds(node, timeout=5.0)
        first = asyncio.ensure_future(rounds.wait(5.0))
        await _settle()
        assert len(node.rounds) == 1
        # Round 1 may have started before these two arrived: they must not use it.
        later = [asyncio.ensure_future(rounds.wait(5.0)) for _ in range(2)]
        await _settle()
        node.rounds[0].set()
        assert await first == 1
        await _settle()
        assert len(node.rounds) == 2 and not any(t.done() for t in later)
        node.rounds[1].set()
        assert [await t for t in later] == [2, 2]  # one round served both
        with pytest.raises(NexusRaftError):  # a deadline shorter than the round
            await rounds.wait(0.05)
        node.rounds[2].set()

    asyncio.run(main())


def test_writes_of_one_loop_turn_go_as_one_group_with_their_own_outcomes() -> None:
    async def main() -> None:
        node = Node()
        writes = WriteGroups(node, timeout=5.0)
        outcomes = await asyncio.gather(
            *(writes.propose(c, 5.0) for c in (b"a", b"bad", b"c")), return_exceptions=True
        )
        assert node.groups == [[b"a", b"bad", b"c"]]
        assert outcomes[0] == b"A" and outcomes[2] == b"C"
        assert isinstance(outcomes[1], ProposalDropped)
        assert await writes.propose(b"d", 5.0) == b"D"
        assert node.groups[-1] == [b"d"]

    asyncio.run(main())


def test_writes_refused_by_a_former_leader_are_proposed_again() -> None:
    async def main() -> None:
        node = Node()
        writes = WriteGroups(node, timeout=5.0)
        got = await asyncio.gather(writes.propose(b"moved", 5.0), writes.propose(b"x", 5.0))
        assert got == [b"MOVED", b"X"]
        assert node.groups == [[b"moved", b"x"], [b"moved", b"x"]]

    asyncio.run(main())
