"""The README's storage quick start runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def storage_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- section: storage -->", 1)[1].split("<!-- section:", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the storage section has no python example"
    return match.group(1)


def test_storage_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example opens the relative path data/app
    namespace: dict[str, object] = {}
    exec(compile(storage_snippet(), "README.md", "exec"), namespace)
    assert (tmp_path / "data" / "app" / "CURRENT").exists()
