"""A member's clean shutdown never hangs on its attribute publisher.

Found by the node simulator (seed 1362 of ``python -m tests.sim_node``): a
member shut down cleanly while it was retrying to publish its attributes
(no leader reachable); the publisher's task swallowed the cancellation
(Python 3.11's ``asyncio.wait_for`` returns the inner result when it
finished in the same loop turn as the cancel), carried on retrying, and
``RaftNode.shutdown()`` waited on it for good: the store stayed locked and
the member could not be started again. A logic test: the node side is a
scripted stand-in that swallows the first cancellation the way that race
does, and fails every proposal (no leader to publish to).
"""

from __future__ import annotations

import asyncio

from nexus_raft.consensus.node.attributes import AttributeBook, MemberAttributes
from nexus_raft.consensus.node.publish import Publisher
from nexus_raft.consensus.node.tasks import cancel_and_wait
from nexus_raft.errors import Unavailable


class _NoLeaderNode:
    """Waits for a leader; the first cancellation is swallowed as wait_for's race does."""

    def __init__(self) -> None:
        self.swallowed = 0
        self.proposals = 0

    @property
    def id(self) -> int:
        return 1

    async def wait_for_leader(self, timeout: float = 5.0) -> int:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1  # the leader appeared in the same loop turn
        return 2

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes:
        self.proposals += 1
        raise Unavailable("the leader went away")


def test_shutdown_while_publishing_with_a_swallowed_cancel_still_stops() -> None:
    async def body() -> None:
        node = _NoLeaderNode()
        publisher = Publisher(
            node, MemberAttributes("nexus-1", ("http://h:1",)), AttributeBook(), timeout=1.0
        )
        publisher.start()
        await asyncio.sleep(0)  # the publisher is now waiting for a leader
        task = publisher._task
        assert task is not None
        stopping = asyncio.get_running_loop().create_task(publisher.stop())
        await asyncio.wait({stopping}, timeout=5.0)
        stopped = stopping.done()
        if not stopped:  # before the fix: still waiting on the publisher for good
            task.cancel()
            await asyncio.wait({stopping}, timeout=5.0)
        assert stopped, "shutdown hung on the publisher"
        assert task.done()
        assert node.swallowed == 1
        assert not publisher.done.is_set()

    asyncio.run(body())


def test_cancel_and_wait_redelivers_a_swallowed_cancellation() -> None:
    async def stubborn(swallow: int) -> str:
        for _ in range(swallow):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass
        await asyncio.sleep(3600)
        return "never"

    async def body() -> None:
        task = asyncio.get_running_loop().create_task(stubborn(3))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait(task, interval=0.01), 5.0)
        assert task.cancelled()

    asyncio.run(body())
