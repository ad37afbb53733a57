"""The storage demo and benchmark run end to end (small sizes for the benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nexus_raft.demo.storage_demo import run_storage_demo

REPO = Path(__file__).resolve().parents[2]


def test_storage_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_storage_demo() == 0
    out = capsys.readouterr().out
    for expected in (
        "worker-2 claims 'job-7': False",
        "counter after 3 atomic increments: b'3'",
        "before apply: bob = b'0'",
        "watch event: bob -> b'30'",
        "snapshot taken before the batch still reads: {b'alice': b'100', b'bob': b'0'}",
        "refused (StoreLockedError)",
        "after reopen: 4 users",
        "next id after reopen: 1000",
        "prefix scan",
        "temporary store removed",
    ):
        assert expected in out


def test_demo_entry_point_storage_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nexus_raft.demo", "--storage"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedded store demo" in proc.stdout


def test_storage_bench_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "storage.py"),
         "--n", "1000", "--rounds", "1", "--sync-n", "5"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "| operation (ops/s) | raw plyvel | Store | sqlite3 (WAL) | Store ÷ plyvel |" in lines
    for op in ("put", "get", "prefix scan", "batch put", "CAS", "fsync'd put"):
        assert any(line.startswith(f"| {op} |") for line in lines), op
