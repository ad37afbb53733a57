"""A member whose log holds a configuration entry knows that member's address after a restart.

Found by the node simulator (seeds 209 and 759 of ``python -m tests.sim_node``):
the endpoint of an appended configuration entry is recorded after the entry is
saved, by a write that becomes durable only with the next synced one. A crash in
between left a member in the configuration whose address this node did not know
after its restart, so every message to it failed ("vote request to 4 failed:
4") and, once the voters were {this node, that member}, no leader was ever
elected again. Real LevelDB and a real RaftNode: the log gets an ADD_VOTER entry
with an address and the peer book does not (the state that crash leaves), then
the node starts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nexus_raft.consensus.core.messages import ConfChange, ConfChangeType, Entry, EntryType
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store
from tests.consensus.node.harness import Cluster, wait_until


def _append_conf_entries(cfg_path: Path, changes: list[ConfChange]) -> None:
    """Append ``changes`` to the stopped node's log as it would have (peer book untouched)."""
    store = Store.open(cfg_path, sync=False)
    try:
        log = LogStore(store)
        hs = log.hard_state
        last = log.last_index()
        entries = [
            Entry(last + 1 + i, hs.term, EntryType.CONF_CHANGE, cc.encode())
            for i, cc in enumerate(changes)
        ]
        log.save(None, entries)
    finally:
        store.close()


def test_member_added_in_the_log_is_reachable_after_a_restart_that_lost_its_address(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        c = Cluster(tmp_path, n=1)
        try:
            node = await c.start(1)
            await c.leader()
            await c.propose(b"\x00")  # any entry of this term: the node is up
            await c.stop(1)
            del node
            added, gone = c.spare_ports
            _append_conf_entries(
                c.config(1).store_path,
                [
                    ConfChange(ConfChangeType.ADD_VOTER, 2, f"127.0.0.1:{added}".encode()),
                    ConfChange(ConfChangeType.ADD_LEARNER, 3, f"127.0.0.1:{gone}".encode()),
                    ConfChange(ConfChangeType.REMOVE, 3),
                ],
            )
            restarted = RaftNode(c.config(1), KVStateMachine())
            c.nodes[1] = restarted
            await restarted.start()
            peers = restarted._peers
            assert peers is not None
            # Before the fix: None, and every message to member 2 failed for good.
            assert peers.address(2) == f"127.0.0.1:{added}"
            assert peers.address(3) is None  # removed later in the same log
            await wait_until(lambda: restarted.status().last_index >= 4, what="the log")
        finally:
            await c.close()

    asyncio.run(body())
