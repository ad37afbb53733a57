"""Shared Hypothesis settings for the fuzz tests (see the package docstring)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))

fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded CI machine must not turn a slow example into a failure
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    database=None,  # leave no .hypothesis directory behind
    suppress_health_check=[HealthCheck.too_slow],
)

# For examples that create real files (a LevelDB directory, a staging file) each time.
fuzz_io = settings(fuzz, max_examples=max(EXAMPLES // 3, 50))
