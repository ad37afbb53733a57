"""Compaction after a restart whose state machine is ahead of the persisted commit index.

Found by the node simulator ("compact"). The commit index is volatile: a
change of it alone is not saved, it rides on the next save. So a member
that applied entries and stopped before its next save comes back with its
state machine ahead of the persisted commit. The core starts at that
commit and hands out the entries above it again (the applier skips them);
a compaction at the state machine's applied index used to drop them from
the log first, and the driver died with LogCompacted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nexus_raft.kv.state_machine import KVStateMachine

from .harness import Cluster, put, wait_until


def test_compaction_after_a_restart_with_the_state_machine_ahead_of_the_persisted_commit(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, 1)  # real LevelDB, real gRPC on loopback

    async def scenario() -> None:
        node = await cluster.start(1)
        await node.wait_for_leader(timeout=10)
        for i in range(20):
            await node.propose(put(f"k/{i:02d}", b"v"), timeout=10)
        await wait_until(lambda: node.status().applied >= node.status().commit, what="apply")
        applied = node.status().applied
        await cluster.stop(1)
        # The last commit-only change was never saved: the state machine is ahead.
        again = await cluster.start(1)
        persisted = again.status().startup_commit
        assert persisted < applied, (persisted, applied)
        # Before the election (nothing newer is committed yet): compact.
        index = await again.snapshot()
        await again.wait_for_leader(timeout=10)
        await again.propose(put("after", b"ok"), timeout=10)
        sm = again.state_machine
        assert isinstance(sm, KVStateMachine)
        assert sm.get(b"after")[0] == b"ok" and sm.get(b"k/19")[0] == b"v"
        assert again.status().snapshot_index <= again.status().commit
        assert again._driver is not None and again._driver.failed is None
        # The log never starts past the commit index the core started from.
        assert index <= persisted

    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(), 60)
        finally:
            await cluster.close()

    asyncio.run(main())
