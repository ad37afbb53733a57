"""Runs every scenario script under testdata/ (see scenario.py for the format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.consensus.core.scenario import run_file

DATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(DATA.glob("*.txt"))


def test_there_are_scenarios() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_scenario(path: Path) -> None:
    expected, actual = run_file(path)
    assert actual == expected, f"{path.name} differs; NEXUS_REWRITE=1 regenerates it"
