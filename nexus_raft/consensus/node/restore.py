"""Restoring a backup into a new member's data directory (``nexus-node restore``).

Like ``etcdutl snapshot restore``: the backup seeds a NEW cluster. Each
member of the new cluster is restored from the same file with its own
``--id`` and the new cluster's ``--peers``; its data directory then holds the
state machine as of the backup's index, and a log that starts with a
snapshot at that (index, term) whose configuration is the new membership.
All members restored from one file agree on that snapshot, so they start as
one cluster: they elect a leader and continue from the backup's index (every
key keeps its revision; new writes get higher ones).

Safety: the file is read and verified in full (sha256) before anything is
written; an existing store is never overwritten; a failure half-way removes
what this restore created.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from nexus_raft.consensus.core.messages import NONE, ConfState, HardState, SnapshotMeta
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.backup import BackupMeta, read_backup_file, verify_backup_file
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.state_machine import StateMachine
from nexus_raft.errors import ConfigError
from nexus_raft.storage import Store

__all__ = ["restore_backup"]


def _fresh(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def restore_backup(
    source: BinaryIO, config: NodeConfig, state_machine: StateMachine | None
) -> BackupMeta:
    """Create ``config``'s data directory from the backup in ``source`` (seekable).

    ``state_machine`` (None for a witness) receives the data. Raises
    :class:`~nexus_raft.errors.CorruptionError` for a damaged file and
    :class:`~nexus_raft.errors.ConfigError` when the data directory already
    holds a store. Returns the backup's metadata.
    """
    if not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, not {type(config).__name__}")
    if config.join:
        raise ConfigError("a restored member founds a new cluster: --join does not apply")
    if config.is_witness != (state_machine is None):
        raise ConfigError("a witness takes no state machine; a full member needs one")
    store_path = Path(config.store_path)
    if not _fresh(store_path):
        raise ConfigError(f"{config.data_dir} already holds a store; restore into a new directory")
    meta, _, _ = verify_backup_file(source)  # refuse a damaged file before writing anything
    source.seek(0)
    data_dir = Path(config.data_dir)
    created = not data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with Store.open(store_path, sync=state_machine is None) as store:
            log = LogStore(store)
            if state_machine is not None:
                state_machine.open(store)
                try:
                    state_machine.restore(meta.index, read_backup_file(source))
                finally:
                    state_machine.close()
            full = frozenset(config.peers) - config.witnesses
            conf = ConfState(voters=full | config.witnesses, witnesses=config.witnesses)
            log.save(
                HardState(term=meta.term, vote=NONE, commit=meta.index),
                [],
                SnapshotMeta(index=meta.index, term=meta.term, conf_state=conf),
            )
            store.flush()
    except BaseException:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif store_path.exists():
            shutil.rmtree(store_path, ignore_errors=True)
        raise
    return meta
