"""disk_bytes / rss_bytes and WitnessStatus formatting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nexus_raft.consensus.node.status import MemberStatus, NodeStatus
from nexus_raft.witness import WitnessStatus, disk_bytes, rss_bytes


def test_disk_bytes_sums_regular_files_recursively(tmp_path: Path) -> None:
    assert disk_bytes(tmp_path / "missing") == 0
    (tmp_path / "a").write_bytes(b"x" * 100)
    sub = tmp_path / "sub" / "deeper"
    sub.mkdir(parents=True)
    (sub / "b").write_bytes(b"y" * 23)
    assert disk_bytes(tmp_path) == 123
    assert disk_bytes(str(tmp_path)) == 123
    with pytest.raises(TypeError, match="path"):
        disk_bytes(7)  # type: ignore[arg-type]


def test_rss_bytes_reads_proc() -> None:
    mine = rss_bytes()
    if not Path("/proc/self/status").exists():  # pragma: no cover - Linux CI
        assert mine is None
        return
    assert mine is not None and mine > 1 << 20
    assert rss_bytes(os.getpid()) is not None
    assert rss_bytes(2**22 + 12345) is None  # no such process
    with pytest.raises(TypeError, match="pid"):
        rss_bytes("1")  # type: ignore[arg-type]


def _node_status(leader: int) -> NodeStatus:
    members = [
        MemberStatus(1, "127.0.0.1:7001", "voter", "leader" if leader == 1 else "follower"),
        MemberStatus(2, "127.0.0.1:7002", "voter", "follower"),
        MemberStatus(3, "127.0.0.1:7003", "witness", "leader" if leader == 3 else "witness",
                     payload_floor=40),
    ]
    return NodeStatus(
        id=3, role="leader" if leader == 3 else "follower", term=4, leader_id=leader,
        leader_address={0: None, 1: "127.0.0.1:7001", 3: "127.0.0.1:7003"}[leader],
        commit=42, applied=3, last_index=45, members=members, witness=True,
    )


def test_witness_status_from_node_and_rendering() -> None:
    st = WitnessStatus.from_node(_node_status(1), cluster_id="c", listen="127.0.0.1:7003",
                                 disk_bytes=5000, rss_bytes=60 << 20)
    assert (st.payload_floor, st.payload_window, st.leader_id) == (40, 5, 1)
    line = st.describe()
    assert "leader 1 (127.0.0.1:7001)" in line and "payload-floor 40" in line
    assert "disk 4.9 KiB" in line and "rss 60.0 MiB" in line
    data = json.loads(json.dumps(st.to_dict()))
    assert data["payload_window"] == 5 and data["members"][2]["kind"] == "witness"

    none = WitnessStatus.from_node(_node_status(0), cluster_id="c", listen="x:1",
                                   disk_bytes=10, rss_bytes=None)
    assert none.leader_id is None and none.leader_address is None
    assert "no leader" in none.describe() and "rss ?" in none.describe()
    leading = WitnessStatus.from_node(_node_status(3), cluster_id="c", listen="x:1",
                                      disk_bytes=10, rss_bytes=None)
    assert "handing over" in leading.describe()
