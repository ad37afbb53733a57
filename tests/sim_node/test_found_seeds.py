"""Seeds of the node simulator that found bugs, kept as regression tests.

Each ran into a violation on the code of its day and passes since its fix;
they are whole adversarial seeds (crashes, power cuts, compactions), so the
states that exposed the bugs are reached again, not a hand-made copy.

- 1362: a member shut down cleanly while retrying to publish its attributes
  never finished stopping (its publisher swallowed the cancellation), so
  its store stayed locked and the member could not start again.
- 2174: a follower's answer to InstallSnapshot was lost when the install
  withdrew older acknowledgements (the core rebuilt its outgoing list), so
  the leader sent snapshot after snapshot and the follower never caught up.
- 759: a member restarted with an appended "add N" entry whose address write
  the crash lost; it never learned N's address, and with voters {it, N} no
  leader was ever elected again.
- 5269 (a simulator fault, not a product bug): the simulator stopped, as
  "removed", a member whose addition the leader had appended but not yet
  applied (it was still catching up by snapshot), judging by the applied
  configuration only; with voters {leader, it} no leader was ever elected.
"""

from __future__ import annotations

import pytest

from tests.sim_node.runner import run_seed


@pytest.mark.parametrize("seed", [759, 1362, 2174])
def test_seed_that_found_a_bug_passes(seed: int) -> None:
    res = run_seed(seed)
    assert res.violation is None, res.trace.excerpt(60)


def test_seed_5269_a_member_whose_addition_is_appended_is_not_taken_for_removed() -> None:
    res = run_seed(5269)
    assert res.violation is None, res.trace.excerpt(60)
