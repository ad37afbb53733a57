"""The core simulator leaves the ``nexus_raft`` logger as it found it.

A seed quiets the package's warnings (ERROR) while it runs; an in-process
test that runs after a simulator test must still see them, whatever the
order pytest picks.
"""

from __future__ import annotations

import io
import logging

import pytest

from tests.sim.runner import run_seed
from tests.sim.trace import Trace


@pytest.mark.parametrize("full_trace", [False, True])
def test_warnings_logged_after_a_simulated_seed_are_not_hidden(
    caplog: pytest.LogCaptureFixture, full_trace: bool
) -> None:
    logger = logging.getLogger("nexus_raft")
    saved = logger.level
    logger.setLevel(logging.NOTSET)
    try:
        result = run_seed(3, Trace(full=True, out=io.StringIO()) if full_trace else None)
        assert result.violation is None
        assert logger.level == logging.NOTSET
        with caplog.at_level(logging.WARNING):
            logging.getLogger("nexus_raft.consensus.node.driver").warning("after the seed")
        assert [r.getMessage() for r in caplog.records] == ["after the seed"]
    finally:
        logger.setLevel(saved)
