"""Every Python snippet in README.md runs as written, and so does every example.

Each ```python block is run in its own interpreter, in a temporary working
directory. A block that talks to a cluster reads ``NEXUS_ENDPOINTS``, as the
README's shell examples do; the test starts a real 3-member cluster for it
and points that variable at it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import REPO_ROOT, ProcessCluster

README = REPO_ROOT / "README.md"
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.py"))

pytestmark = pytest.mark.process


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def run_python(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_readme_has_snippets_without_top_level_await() -> None:
    found = snippets()
    assert len(found) >= 4
    for code in found:
        compile(code, "README.md", "exec")  # a top-level await would not compile


def test_every_readme_snippet_runs(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cluster = None
    try:
        for n, code in enumerate(snippets()):
            if "NEXUS_ENDPOINTS" in code and cluster is None:
                cluster = ProcessCluster(tmp_path / "cluster", 3)
                cluster.start()
                cluster.wait_for_leader()
                env["NEXUS_ENDPOINTS"] = ",".join(cluster.endpoints())
            work = tmp_path / f"snippet{n}"
            work.mkdir()
            (work / "snippet.py").write_text(code)
            result = run_python(["snippet.py"], work, env)
            assert result.returncode == 0, f"README snippet {n} failed:\n{code}\n{result.stderr}"
    finally:
        if cluster is not None:
            cluster.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = run_python([str(example)], tmp_path, env)
    assert result.returncode == 0, result.stderr
    expected = {
        "counter.py": "every member: {1: 42, 2: 42, 3: 42}",
        "sqlite_db.py": "[('alice', 'admin'), ('bob', 'lead'), ('carol', 'ops')]",
        "pubsub_events.py": "orders #3: order 3 placed",
    }
    assert expected[example.name] in result.stdout


def test_sqlite_example_snapshot_restores_into_another_member(tmp_path: Path) -> None:
    """The path a lagging member takes: snapshot on one member, restore on another."""
    import importlib.util

    from nexus_raft.storage import Store

    spec = importlib.util.spec_from_file_location("sqlite_db", REPO_ROOT / "examples/sqlite_db.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with Store.open(tmp_path / "a") as sa, Store.open(tmp_path / "b") as sb:
        a, b = (
            mod.SQLiteStateMachine(tmp_path / "a.sqlite"),
            mod.SQLiteStateMachine(tmp_path / "b.sqlite"),
        )
        a.open(sa)
        b.open(sb)
        a.apply_batch(
            [
                (1, mod.sql("CREATE TABLE t (k TEXT, v INT)")),
                (2, mod.sql("INSERT INTO t VALUES (?, ?)", "x", 1)),
            ]
        )
        assert a.apply(2, mod.sql("INSERT INTO t VALUES (?, ?)", "dup", 0)) == b""  # replay
        snap = a.snapshot()
        b.restore(snap.index, iter(snap))
        assert b.applied_index() == 2 and b.query("SELECT * FROM t") == [("x", 1)]
        a.close()
        b.close()
