"""Fixtures of the witness process tests: 2+1 clusters that are always torn down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .process_helpers import TwoPlusOne


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        for cluster in getattr(item, "_witness_clusters", []):
            report.sections.append(("2+1 cluster logs", cluster.logs()))
    return report


@pytest.fixture
def two_plus_one(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[
        Callable[[], TwoPlusOne]]:
    """``make()`` starts members 1, 2 (full) and 3 (witness) and waits for a full leader."""
    clusters: list[TwoPlusOne] = []
    request.node._witness_clusters = clusters

    def make() -> TwoPlusOne:
        cluster = TwoPlusOne(tmp_path / f"cluster{len(clusters)}")
        clusters.append(cluster)
        cluster.start()
        cluster.wait_for_leader()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()
