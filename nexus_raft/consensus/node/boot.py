"""Opening a RaftNode's store: bootstrap a new cluster, recover positions, load addresses."""

from __future__ import annotations

import logging

from nexus_raft.consensus.core.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
)
from nexus_raft.consensus.core.storage import LogCompacted, LogUnavailable
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.storage import Store

__all__ = ["PEERS_TREE", "bootstrap_log", "load_addresses", "recover_position"]

_log = logging.getLogger(__name__)

PEERS_TREE = "node.peers"
"""Tree of the node's store holding endpoints learned at run time (id -> endpoint)."""


def bootstrap_log(log: LogStore, cfg: NodeConfig) -> None:
    """Write the initial membership as committed configuration entries 1..n (term 1).

    Every initial member writes the same entries, so their logs agree; a
    member added later receives them through normal replication (or a
    snapshot) and so learns the whole membership and every endpoint (each
    entry's context is the member's endpoint). Full voters come first, then
    witnesses, each group by id.
    """
    order = sorted(set(cfg.peers) - cfg.witnesses) + sorted(cfg.witnesses)
    entries = []
    for index, nid in enumerate(order, start=1):
        kind = ConfChangeType.ADD_WITNESS if nid in cfg.witnesses else ConfChangeType.ADD_VOTER
        cc = ConfChange(kind, nid, cfg.peers[nid].encode("utf-8"))
        entries.append(Entry(index, 1, EntryType.CONF_CHANGE, cc.encode()))
    log.save(HardState(term=1, vote=NONE, commit=len(entries)), entries, None)
    _log.info("node %d: bootstrapped a new cluster of %d members", cfg.id, len(entries))


def recover_position(log: LogStore, sm_applied: int) -> tuple[int, ConfState]:
    """Term and configuration as of the state machine's applied index.

    One term lookup (the cached tail or one point read) and the log's
    in-memory configuration entries: no scan of the entries in between.
    """
    snap = log.snapshot()
    upto = min(max(sm_applied, snap.index), log.last_index())
    if upto <= snap.index:
        return snap.term, snap.conf_state
    try:
        return log.term(upto), log.conf_state_at(upto)
    except (LogCompacted, LogUnavailable):  # pragma: no cover - bounds checked above
        return snap.term, snap.conf_state


def load_addresses(store: Store, cfg: NodeConfig) -> dict[int, str]:
    """Endpoints learned at run time (persisted), overridden by the configured peers."""
    addresses: dict[int, str] = {}
    for key, value in store.tree(PEERS_TREE).iter():
        addresses[int(key.decode())] = value.decode()
    addresses.update(cfg.peers)
    return addresses
