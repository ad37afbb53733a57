"""``nexus-witness`` as a program: bad flags, status lines, clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nexus_raft.cli.witness import main
from tests.integration.harness import REPO_ROOT, wait_until

from .inproc import peers_of


def _peers_arg(peers: dict[int, str]) -> str:
    return ",".join(f"{i}={a}" for i, a in peers.items())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "Missing option"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:2,2=127.0.0.1:3",
          "--data-dir", "D"], "must be one of the --peers"),
        (["--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1",
          "--data-dir", "D"], "at least one full"),
        (["--id", "3", "--listen", "nope", "--peers", "1=127.0.0.1:2,3=127.0.0.1:1",
          "--data-dir", "D"], "listen"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=x,3=127.0.0.1:1",
          "--data-dir", "D"], "member 1"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:2,3=127.0.0.1:1",
          "--data-dir", "D", "--log-level", "loud"], "--log-level"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:2,3=127.0.0.1:1",
          "--data-dir", "D", "--status-interval", "-1"], "--status-interval"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:2,3=127.0.0.1:1",
          "--data-dir", "D", "--join", "127.0.0.1:2"], "not both"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--data-dir", "D"], "--join HOST:PORT"),
        (["--id", "3", "--listen", "127.0.0.1:1", "--data-dir", "D", "--join", "nope"],
         "endpoint"),
        (["--id", "3", "--bogus"], "--bogus"),
    ],
)
def test_bad_flags_exit_non_zero_with_one_line(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(tmp_path / "d") if a == "D" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("nexus-witness: error:") and "\n" not in err, err
    assert needle in err
    assert not (tmp_path / "d").exists(), "nothing is created on bad flags"


def _spawn(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", ""))
                                        if p)
    return subprocess.Popen(
        [sys.executable, "-m", "nexus_raft.cli.witness", *args],
        stdout=subprocess.PIPE, stderr=(tmp_path / "stderr.log").open("w"), text=True,
        env=env, cwd=REPO_ROOT,
    )  # fmt: skip


@pytest.mark.process
@pytest.mark.parametrize(
    ("sig", "json_first", "json_last"),
    [(signal.SIGTERM, [], ["--json"]), (signal.SIGINT, ["-w", "json"], [])],
)
def test_json_status_lines_and_clean_shutdown(
    sig: int, json_first: list[str], json_last: list[str], tmp_path: Path
) -> None:
    peers = peers_of(3)
    data = tmp_path / "w"
    proc = _spawn([*json_first, "--id", "3", "--listen", peers[3], "--peers", _peers_arg(peers),
                   "--data-dir", str(data), "--status-interval", "0.2",
                   "--log-level", "warning", *json_last], tmp_path)
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "started"
        assert started["id"] == 3 and started["role"] == "follower"
        assert started["leader_id"] is None and started["last_index"] == 3
        assert started["disk_bytes"] > 0 and started["listen"] == peers[3]
        assert [m["kind"] for m in started["members"]] == ["voter", "voter", "witness"]
        periodic = json.loads(proc.stdout.readline())
        assert periodic["event"] == "status" and periodic["term"] == started["term"]
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        lines = [json.loads(line) for line in proc.stdout.read().splitlines()]
        assert lines[-1]["event"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    # The store was closed cleanly: it opens again at once.
    second = _spawn(["--id", "3", "--listen", peers[3], "--peers", _peers_arg(peers),
                     "--data-dir", str(data)], tmp_path)
    try:
        assert second.stdout is not None
        line = second.stdout.readline()
        assert line.startswith("[started] witness 3 follower term"), line
        second.terminate()
        assert second.wait(timeout=15) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(timeout=10)
        if second.stdout is not None:
            second.stdout.close()


@pytest.mark.process
def test_data_dir_in_use_fails_with_one_line(tmp_path: Path) -> None:
    peers = peers_of(3)
    args = ["--id", "3", "--listen", peers[3], "--peers", _peers_arg(peers),
            "--data-dir", str(tmp_path / "w")]
    first = _spawn(args, tmp_path)
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith("[started]")
        other = peers_of(1)[1]
        clash = subprocess.run(
            [sys.executable, "-m", "nexus_raft.cli.witness",
             *[other if a == peers[3] else a for a in args]],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
        assert clash.returncode == 1
        last = clash.stderr.strip().splitlines()[-1]
        assert last.startswith("nexus-witness: error:") and "already open" in last, clash.stderr
    finally:
        first.terminate()
        wait_until("the first witness to exit", lambda: first.poll() is not None, 15)
        if first.stdout is not None:
            first.stdout.close()
