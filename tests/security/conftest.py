"""Member log tails appended to the report of a failing security process test."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        for cluster in getattr(item, "_clusters", []):
            report.sections.append(("nexus-node logs", cluster.logs()))
    return report
