"""Opening a RaftNode's store: bootstrap a new cluster, recover positions, load addresses."""

from __future__ import annotations

import logging
from pathlib import Path

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
from nexus_raft.consensus.node.snapshot import clean_staging, install_path, iter_file
from nexus_raft.consensus.state_machine import StateMachine
from nexus_raft.errors import ConsensusError
from nexus_raft.storage import Store

__all__ = [
    "PEERS_TREE",
    "StateAheadOfLog",
    "StateBehindLog",
    "bootstrap_log",
    "finish_install",
    "load_addresses",
    "recover_position",
]

_log = logging.getLogger(__name__)

PEERS_TREE = "node.peers"
"""Tree of the node's store holding endpoints learned at run time (id -> endpoint)."""


class StateBehindLog(ConsensusError):
    """The state machine is behind the log's snapshot and that snapshot's data is gone."""


class StateAheadOfLog(ConsensusError):
    """The state machine is past the log's last index (its configuration is unknown)."""


def finish_install(sm: StateMachine, log: LogStore, directory: Path, sm_applied: int) -> int:
    """Bring the state machine up to the log's snapshot; returns its applied index.

    A snapshot install saves the log's record first and restores the state
    machine after, from data kept in ``install-<index>.snap`` until the
    restored state is durable (see the driver). A crash in between leaves the
    state machine behind the log's snapshot: the restore is finished here,
    before anything is served. Without that data (deleted by hand, or a state
    machine that keeps nothing across restarts) the member refuses to start:
    serving would answer from a state that lacks committed writes.
    Leftover staging files are removed.
    """
    snap = log.snapshot()
    kept = install_path(directory, snap.index)
    if sm_applied < snap.index:
        if not kept.is_file():
            raise StateBehindLog(
                f"the state machine is at {sm_applied}, behind the log's snapshot at "
                f"{snap.index}, with no snapshot data to restore it from ({kept}): restore "
                "this member from a backup, or remove it from the cluster and add it anew"
            )
        _log.warning(
            "finishing the install of snapshot %d interrupted by a crash "
            "(state machine at %d)",
            snap.index,
            sm_applied,
        )
        sm.restore(snap.index, iter_file(kept))
        sm_applied = sm.applied_index()
        if sm_applied < snap.index:
            raise StateBehindLog(
                f"restoring snapshot {snap.index} left the state machine at {sm_applied}"
            )
        log.store.flush()
    clean_staging(directory)
    return sm_applied


def bootstrap_log(log: LogStore, cfg: NodeConfig) -> None:
    """Write the initial membership as committed configuration entries 1..n (term 1).

    Every initial member writes the same entries, so their logs agree; a
    member added later receives them through normal replication (or a
    snapshot) and so learns the whole membership and every endpoint (each
    entry's context is the member's endpoint). Full voters come first, then
    witnesses, then learners, each group by id.
    """
    voters = sorted(set(cfg.peers) - cfg.witnesses - cfg.learners)
    order = voters + sorted(cfg.witnesses) + sorted(cfg.learners)
    entries = []
    for index, nid in enumerate(order, start=1):
        if nid in cfg.witnesses:
            kind = ConfChangeType.ADD_WITNESS
        elif nid in cfg.learners:
            kind = ConfChangeType.ADD_LEARNER
        else:
            kind = ConfChangeType.ADD_VOTER
        cc = ConfChange(kind, nid, cfg.peers[nid].encode("utf-8"))
        entries.append(Entry(index, 1, EntryType.CONF_CHANGE, cc.encode()))
    log.save(HardState(term=1, vote=NONE, commit=len(entries)), entries, None)
    _log.info("node %d: bootstrapped a new cluster of %d members", cfg.id, len(entries))


def recover_position(log: LogStore, sm_applied: int) -> tuple[int, ConfState]:
    """Term and configuration as of the state machine's applied index.

    One term lookup (the cached tail or one point read) and the log's
    in-memory configuration entries: no scan of the entries in between.
    Raises :class:`StateAheadOfLog` when the state machine is past the log's
    last index: the log cannot tell that state's configuration (the one at
    the log's end is older), and a snapshot sent from it would carry an old
    member list.
    """
    snap = log.snapshot()
    last = log.last_index()
    if sm_applied > last:
        raise StateAheadOfLog(
            f"the state machine is at {sm_applied}, past the log's last index {last}: "
            "a snapshot install was interrupted before its log record was saved "
            "(a data directory of an older version); its configuration is unknown"
        )
    upto = max(sm_applied, snap.index)
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
