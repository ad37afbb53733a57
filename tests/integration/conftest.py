"""Fixtures for the process tests: clusters that are always torn down.

``make_cluster(size, ...)`` starts a fresh cluster for a destructive test;
``shared_cluster`` is one 3-member cluster reused by the tests of a module
that only read, write and watch. Both kill every process in ``finally``, and
a failing test gets the members' log tails appended to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import ProcessCluster


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        for cluster in getattr(item, "_clusters", []):
            report.sections.append(("nexus-node logs", cluster.logs()))
    return report


@pytest.fixture
def make_cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ProcessCluster]]:
    clusters: list[ProcessCluster] = []
    request.node._clusters = clusters

    def make(size: int = 3, *, start: bool = True, **options: Any) -> ProcessCluster:
        cluster = ProcessCluster(tmp_path / f"cluster{len(clusters)}", size, **options)
        clusters.append(cluster)
        if start:
            cluster.start()
            cluster.wait_for_leader()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.close()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    cluster = ProcessCluster(tmp_path_factory.mktemp("shared"), 3)
    try:
        cluster.start()
        cluster.wait_for_leader()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(shared_cluster: ProcessCluster, request: pytest.FixtureRequest) -> ProcessCluster:
    request.node._clusters = [shared_cluster]
    return shared_cluster
