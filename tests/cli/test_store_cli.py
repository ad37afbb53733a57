"""nexus-store: inspect a store from the shell (text and --json output, one-line errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_raft.cli.store import main
from nexus_raft.storage import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "store"
    with Store.open(p) as s:
        s.set(b"a", b"1")
        s.set(b"b", b"2")
        users = s.tree("users")
        users.set(b"alice", b"admin")
        users.set(b"bob", b"tab\there")
        users.set(b"\xff\x00", b"\x01bin")
    return p


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nexus-store: error: ")
    return lines[0]


def test_trees(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(path), "trees") == (0, "default\nusers\n", "")
    code, out, _ = run(capsys, str(path), "trees", "--json")
    assert code == 0 and json.loads(out) == ["default", "users"]


@pytest.mark.parametrize(
    "args",
    [["-w", "json", "PATH", "trees"], ["PATH", "-w=json", "trees"], ["PATH", "trees", "-w", "json"],
     ["--json", "PATH", "trees"]],
)
def test_json_output_asked_for_anywhere_on_the_line(
    path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, _ = run(capsys, *[str(path) if a == "PATH" else a for a in args])
    assert code == 0 and json.loads(out) == ["default", "users"]


def test_get(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(path), "get", "a") == (0, "1\n", "")
    assert run(capsys, str(path), "get", "alice", "--tree", "users") == (0, "admin\n", "")
    code, out, _ = run(capsys, str(path), "get", "ff00", "-t", "users", "--hex", "--json")
    assert code == 0
    assert json.loads(out) == {"tree": "users", "key": "/wA=", "key_encoding": "base64",
                               "value": "\x01bin", "encoding": "utf-8"}


def test_get_missing_key_or_tree(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(path), "get", "nope")
    assert code == 1 and out == ""
    assert "key not found" in one_line_error(err)
    code, _, err = run(capsys, str(path), "get", "a", "--tree", "nope")
    assert code == 1 and "no tree 'nope'" in one_line_error(err)
    with Store.open(path) as s:  # reading did not create the tree
        assert s.tree_names() == ["default", "users"]


def test_set_then_get(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(path), "set", "k", "v") == (0, "", "")
    code, out, _ = run(capsys, str(path), "set", "x", "y", "--tree", "fresh", "--json")
    assert code == 0 and json.loads(out) == {"tree": "fresh", "key": "x", "key_encoding": "utf-8",
                                             "value": "y", "encoding": "utf-8"}
    assert run(capsys, str(path), "set", "--hex", "00ff", "cafe") == (0, "", "")
    with Store.open(path) as s:
        assert s.get(b"k") == b"v"
        assert s.tree("fresh").get(b"x") == b"y"
        assert s.get(b"\x00\xff") == b"\xca\xfe"


def test_bad_hex_is_a_usage_error(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(path), "get", "--hex", "zz")
    assert code == 2 and "not valid hex" in one_line_error(err)


def test_scan(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, str(path), "scan") == (0, "a\t1\nb\t2\n", "")
    code, out, _ = run(capsys, str(path), "scan", "-t", "users")
    # Control characters and invalid UTF-8 are escaped: one pair per line.
    assert (code, out) == (0, "alice\tadmin\nbob\ttab\\x09here\n\\xff\\x00\t\\x01bin\n")
    assert run(capsys, str(path), "scan", "b", "-t", "users") == (0, "bob\ttab\\x09here\n", "")
    code, out, _ = run(capsys, str(path), "scan", "-t", "users", "--reverse", "--limit", "1")
    assert (code, out) == (0, "\\xff\\x00\t\\x01bin\n")
    code, out, _ = run(capsys, str(path), "scan", "ff", "--hex", "-t", "users", "--json")
    assert code == 0 and json.loads(out) == [
        {"key": "/wA=", "key_encoding": "base64", "value": "\x01bin", "encoding": "utf-8"}
    ]
    code, out, _ = run(capsys, str(path), "scan", "--json", "-n", "0")
    assert code == 0 and json.loads(out) == []


def test_stats(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(path), "stats", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["trees"] == {
        "default": {"keys": 2, "bytes": 4},
        "users": {"keys": 3, "bytes": 5 + 5 + 3 + 8 + 2 + 4},
    }
    assert report["path"] == str(path) and report["disk_bytes"] > 0
    code, out, _ = run(capsys, str(path), "stats")
    assert code == 0 and "users" in out and "3 keys" in out


def test_missing_store_is_one_line_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    code, out, err = run(capsys, str(missing), "trees")
    assert code == 1 and out == ""
    assert "no store at" in one_line_error(err)
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, str(empty), "get", "k")
    assert code == 1 and "no store" in one_line_error(err)
    assert list(empty.iterdir()) == []


def test_store_held_by_another_process_is_read_from_a_copy_and_refuses_writes(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(path) as held:  # as a running node holds its store
        held.set("live", b"yes")
        held.flush()
        code, out, err = run(capsys, str(path), "get", "live")
        assert code == 0 and out.strip() == "yes"
        assert "reading a copy" in err
        code, out, err = run(capsys, str(path), "set", "k", "v")
        assert code == 1 and out == ""
        assert "read-only" in one_line_error(err)
        assert held.get("k") is None


@pytest.mark.parametrize(
    "args",
    [[], ["PATH"], ["PATH", "frobnicate"], ["PATH", "get"], ["PATH", "scan", "-n", "x"],
     ["PATH", "scan", "-n", "-1"], ["PATH", "trees", "--bogus"]],
)
def test_usage_errors_exit_2(
    path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run(capsys, *[str(path) if a == "PATH" else a for a in args])
    assert code == 2
    one_line_error(err)


def test_thin_executable(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bin" / "nexus-store"), str(path), "trees", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["default", "users"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bin" / "nexus-store"), str(path / "nope"), "trees"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
