"""A data directory's recorded identity (real LevelDB stores): the record wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.boot import bootstrap_log
from nexus_raft.consensus.node.config import NodeConfig, derive_cluster_id
from nexus_raft.consensus.node.datadir import (
    Identity,
    open_identity,
    peek_identity,
    read_identity,
    record_removal,
)
from nexus_raft.errors import ConfigError, IdentityMismatch, MemberRemoved
from nexus_raft.storage import Store

PEERS = {1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"}


def config(tmp_path: Path, **over: object) -> NodeConfig:
    opts: dict[str, object] = {"id": 1, "listen": PEERS[1], "peers": dict(PEERS),
                               "data_dir": tmp_path}  # fmt: skip
    opts.update(over)
    return NodeConfig(**opts)  # type: ignore[arg-type]


def open_with(cfg: NodeConfig) -> tuple[Identity, int]:
    store = Store.open(cfg.store_path)
    try:
        log = LogStore(store)
        identity = open_identity(store, log, cfg, bootstrap=lambda: bootstrap_log(log, cfg))
        return identity, log.last_index()
    finally:
        store.close()


def test_the_derived_id_covers_witnesses_and_learners() -> None:
    plain = derive_cluster_id(PEERS)
    assert plain == derive_cluster_id(dict(reversed(list(PEERS.items()))))
    assert derive_cluster_id(PEERS, {3}) != plain
    assert derive_cluster_id(PEERS, (), {3}) != plain
    assert derive_cluster_id(PEERS, {3}) != derive_cluster_id(PEERS, (), {3})
    assert derive_cluster_id({**PEERS, 3: "127.0.0.1:9"}) != plain
    # A plain cluster keeps the id earlier versions derived from the peers alone.
    assert plain == derive_cluster_id(PEERS, (), ())


def test_first_start_records_then_the_record_wins(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    identity, last = open_with(cfg)
    assert last == 3  # the bootstrap entries
    assert peek_identity(cfg.store_path) == identity
    assert identity.cluster_id == cfg.effective_cluster_id
    # A later start with another peer list keeps the recorded cluster.
    moved = config(tmp_path, peers={**PEERS, 4: "127.0.0.1:7004"})
    again, last = open_with(moved)
    assert again == identity and last == 3  # no second bootstrap
    with pytest.raises(IdentityMismatch, match=r"belongs to member 1 .* not to member 2"):
        open_with(config(tmp_path, id=2, listen=PEERS[2]))
    with pytest.raises(IdentityMismatch, match=r"belongs to cluster .* --cluster-id other"):
        open_with(config(tmp_path, cluster_id="other"))


def test_a_removed_member_does_not_start_again(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    identity, _ = open_with(cfg)
    store = Store.open(cfg.store_path)
    try:
        record_removal(store, identity, 42)
        recorded = read_identity(store)
        assert recorded is not None and recorded.removed_at == 42
    finally:
        store.close()
    with pytest.raises(MemberRemoved, match=r"removed from cluster .* at index 42"):
        open_with(cfg)


def test_a_joining_member_needs_the_cluster_id_and_writes_no_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cluster id"):
        open_with(config(tmp_path, id=4, listen="127.0.0.1:7004", join=True))
    identity, last = open_with(
        config(tmp_path, id=4, listen="127.0.0.1:7004", join=True, cluster_id="c1")
    )
    assert last == 0 and identity.origin == "joined"


def test_a_directory_without_a_record_gets_one(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = Store.open(cfg.store_path)
    try:
        bootstrap_log(LogStore(store), cfg)  # as an older version left it
    finally:
        store.close()
    identity, last = open_with(cfg)
    assert identity.origin == "recorded" and last == 3
