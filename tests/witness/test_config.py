"""witness_config / check_witness_config: the witness's NodeConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_raft.consensus.node.config import NodeConfig, derive_cluster_id
from nexus_raft.errors import ConfigError
from nexus_raft.witness import check_witness_config, witness_config

PEERS = {1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"}


def test_witness_config_marks_itself_and_keeps_other_witnesses(tmp_path: Path) -> None:
    cfg = witness_config(id=3, listen="127.0.0.1:7003", peers=PEERS, data_dir=tmp_path)
    assert cfg.is_witness
    assert cfg.witnesses == frozenset({3})
    # Same derived cluster id as full members started with the same --peers and
    # --witness 3 (the id covers which members are witnesses).
    assert cfg.effective_cluster_id == derive_cluster_id(PEERS, {3})
    assert cfg.effective_cluster_id != derive_cluster_id(PEERS)
    # Same automatic compaction as a full member (the node caps it at the payload floor).
    assert cfg.snapshot_every == NodeConfig.__dataclass_fields__["snapshot_every"].default
    peers5 = {**PEERS, 4: "127.0.0.1:7004", 5: "127.0.0.1:7005"}
    cfg5 = witness_config(id=5, listen="127.0.0.1:7005", peers=peers5, data_dir=tmp_path,
                          witnesses=[4], tick_interval=0.05)
    assert cfg5.witnesses == frozenset({4, 5})
    assert cfg5.tick_interval == 0.05
    assert witness_config(id=3, listen="127.0.0.1:7003", peers=PEERS, data_dir=tmp_path,
                          snapshot_every=500).snapshot_every == 500


def test_witness_config_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be one of the peers"):
        witness_config(id=4, listen="127.0.0.1:7004", peers=PEERS, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="at least one full"):
        witness_config(id=1, listen="x:1", peers={1: "127.0.0.1:1"}, data_dir=tmp_path)
    with pytest.raises(TypeError, match="id"):
        witness_config(id="3", listen="x:1", peers=PEERS, data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="peers"):
        witness_config(id=3, listen="x:1", peers=[1, 2], data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="witnesses"):
        witness_config(id=3, listen="x:1", peers=PEERS, data_dir=tmp_path,
                       witnesses="2")  # type: ignore[arg-type]
    # A witness being added at run time may be missing from the initial peers.
    joining = witness_config(id=4, listen="127.0.0.1:7004", peers=PEERS, data_dir=tmp_path,
                             join=True, cluster_id="c1")
    assert joining.is_witness and joining.join


def test_check_witness_config(tmp_path: Path) -> None:
    full = NodeConfig(id=1, listen="127.0.0.1:7001", peers=PEERS, data_dir=tmp_path,
                      witnesses=frozenset({3}))
    with pytest.raises(ConfigError, match="not listed"):
        check_witness_config(full)
    with pytest.raises(TypeError, match="config"):
        check_witness_config({"id": 3})  # type: ignore[arg-type]
    w = NodeConfig(id=3, listen="127.0.0.1:7003", peers=PEERS, data_dir=tmp_path,
                   witnesses=frozenset({3}))
    assert check_witness_config(w) is w
