"""Backup and restore with real processes: save from a live cluster, restore a new one.

``nexusctl snapshot save`` streams a checksummed backup from the leader;
``nexus-node restore`` builds each member of a NEW 3-member cluster from it;
the new cluster serves every key with its value and revision. A damaged
file is refused and nothing is written.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import REPO_ROOT, ProcessCluster

pytestmark = pytest.mark.process


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )


def _save_on_a_terminal(endpoints: str, file: Path) -> str:
    """``nexusctl snapshot save FILE`` with stdout and stderr on a pseudo-terminal."""
    main, child = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nexus_raft.cli.ctl", "--endpoints", endpoints,
             "snapshot", "save", str(file)],
            stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env, cwd=REPO_ROOT,
        )  # fmt: skip
        os.close(child)
        child = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0, b"".join(chunks)
    finally:
        os.close(main)
        if child >= 0:
            os.close(child)
    return b"".join(chunks).decode(errors="replace")


def test_backup_then_restore_into_a_new_three_member_cluster(
    make_cluster: Callable[..., ProcessCluster], tmp_path: Path
) -> None:
    old = make_cluster(3)
    client = old.client()
    for i in range(120):
        client.put(f"users/{i:03d}", b"v%d" % i)
    for i in range(0, 120, 7):
        client.put(f"users/{i:03d}", b"again %d" % i)  # a newer revision
    for i in range(0, 120, 11):
        client.delete(f"users/{i:03d}")
    client.put("bin", bytes(range(256)))
    keys = client.list_keys("")
    expected = {k: client.get_with_revision(k) for k in keys}
    assert len(expected) > 100

    backup = tmp_path / "cluster.nxb"
    eps = ",".join(old.endpoints())
    saved = run("nexus_raft.cli.ctl", "--endpoints", eps, "snapshot", "save", str(backup), "--json")
    assert saved.returncode == 0, saved.stderr
    meta = json.loads(saved.stdout)
    assert meta["index"] >= max(rev for _, rev in expected.values())
    assert backup.exists() and not backup.with_name("cluster.nxb.part").exists()
    status = run(
        "nexus_raft.cli.ctl", "--endpoints", eps, "snapshot", "status", str(backup), "-w", "json"
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["index"] == meta["index"]

    # On a terminal, save shows its progress on stderr (stdout stays the result).
    shown = _save_on_a_terminal(eps, tmp_path / "again.nxb")
    assert "saving backup: " in shown and "saved backup at index" in shown, shown

    # A damaged copy is refused by both tools, and nothing is written.
    damaged = tmp_path / "damaged.nxb"
    raw = bytearray(backup.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    damaged.write_bytes(bytes(raw))
    bad = run("nexus_raft.cli.ctl", "--endpoints", eps, "snapshot", "status", str(damaged))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "damaged" in bad.stderr
    new = ProcessCluster(tmp_path / "new", 3)
    try:
        target = new.members[1].data_dir
        refused = run(
            "nexus_raft.cli.node",
            "restore",
            str(damaged),
            "--id",
            "1",
            "--peers",
            new.peers_arg,
            "--data-dir",
            str(target),
        )
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("\n") == 1 and "not a usable backup" in refused.stderr
        assert not target.exists()
        truncated = tmp_path / "cut.nxb"
        truncated.write_bytes(backup.read_bytes()[:-10])
        cut = run(
            "nexus_raft.cli.node",
            "restore",
            str(truncated),
            "--id",
            "1",
            "--peers",
            new.peers_arg,
            "--data-dir",
            str(target),
        )
        assert cut.returncode == 1 and not target.exists()

        for i, member in new.members.items():
            done = run(
                "nexus_raft.cli.node",
                "restore",
                str(backup),
                "--id",
                str(i),
                "--peers",
                new.peers_arg,
                "--data-dir",
                str(member.data_dir),
                "--json",
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["index"] == meta["index"]
        again = run(
            "nexus_raft.cli.node",
            "restore",
            str(backup),
            "--id",
            "1",
            "--peers",
            new.peers_arg,
            "--data-dir",
            str(new.members[1].data_dir),
        )
        assert again.returncode == 1 and "already holds a store" in again.stderr
        old.close()  # the old cluster is gone; only the backup remains
        new.start()
        new.wait_for_leader()
        fresh = new.client()
        for key, (value, revision) in expected.items():
            assert fresh.get_with_revision(key) == (value, revision), key
        assert sorted(fresh.list_keys("")) == sorted(keys)
        # Revisions continue after the backup's: nothing restored is ever reused.
        assert fresh.put("after/restore", b"x") > max(rev for _, rev in expected.values())
        for i in new.members:
            new.wait_applied(i, meta["index"] + 1)
    finally:
        new.close()
