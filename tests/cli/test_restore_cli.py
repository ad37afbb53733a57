"""Backup and restore failures at the command line, in-process: one line, exit 1, nothing left.

The round trip with real processes is tests/integration/test_backup_restore.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_raft.cli import node
from nexus_raft.consensus.node.backup import encode_backup, new_meta

PEERS = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"


def _backup(path: Path) -> Path:
    """A well-formed backup file (header, one chunk, sha256 trailer)."""
    meta = new_meta(5, 2, cluster_id="nx-test", members={1: "127.0.0.1:7001"},
                    state_machine="KVStateMachine", member_id=1)  # fmt: skip
    path.write_bytes(b"".join(encode_backup(meta, [b"state"])))
    return path


def test_restore_into_a_data_directory_that_cannot_be_created_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = _backup(tmp_path / "b.nxb")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "member1"
    code = node.main(["restore", str(backup), "--id", "1", "--peers", PEERS,
                      "--data-dir", str(target)])  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("nexus-node: error: cannot restore into "), err
    assert "Not a directory" in err[0] and "Traceback" not in err[0], err
    assert blocker.read_text() == "not a directory"


def test_snapshot_save_into_a_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_raft.cli import ctl

    monkeypatch.delenv("NEXUS_ENDPOINTS", raising=False)
    target = tmp_path / "no-such-dir" / "backup.nxb"
    code = ctl.main(["--endpoints", "127.0.0.1:1", "snapshot", "save", str(target)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("nexusctl: error: cannot write "), err
    assert "No such file or directory" in err[0], err
    assert not target.parent.exists()


@pytest.mark.parametrize(
    "order",
    [["--id", "1", "restore", "FILE"], ["--data-dir", "DIR", "-w", "json", "restore", "FILE"],
     ["--peers", PEERS, "restore", "--id", "1", "FILE"]],
)
def test_restore_is_found_after_options_that_take_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], order: list[str]
) -> None:
    backup = _backup(tmp_path / "b.nxb")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = str(blocker / "member1")
    args = [str(backup) if a == "FILE" else target if a == "DIR" else a for a in order]
    for flag, value in (("--id", "1"), ("--peers", PEERS), ("--data-dir", target)):
        if flag not in args:
            args += [flag, value]
    assert node.main(args) == 1
    err = capsys.readouterr().err.splitlines()
    # The restore itself ran (and met the blocked directory), not the member program.
    assert len(err) == 1 and "cannot restore into" in err[0], err
