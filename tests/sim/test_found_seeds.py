"""Seeds of 20,000-seed core simulator runs that once failed, kept as tests.

Each was traced (``python -m tests.sim --seed N --trace``) to its cause; the
test runs the seed again and names what it once broke.
"""

from __future__ import annotations

from nexus_raft.consensus.core.memory_storage import MemoryStorage
from nexus_raft.consensus.core.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
)
from tests.sim.node import SimNode, fewest_voters
from tests.sim.runner import run_seed


def test_seed_17740_entries_committed_by_a_one_voter_configuration_before_a_witness_joins() -> None:
    """Voters {1, 2}; the leader appends "remove 2": {1} commits the tail on its
    copy alone, as Raft allows; a witness is added before that Ready is
    persisted. The payload-copies check judged the commit by {1, witness}
    (two copies needed) and reported a violation that was not one."""
    result = run_seed(17740)
    assert result.violation is None, result.violation


def _node_with(voters: set[int], changes: list[ConfChange]) -> SimNode:
    st = MemoryStorage(ConfState(frozenset(voters)))
    ents = [Entry(1, 1, EntryType.NORMAL, b"put")]
    for i, cc in enumerate(changes, start=2):
        ents.append(Entry(i, 1, EntryType.CONF_CHANGE, cc.encode()))
    st.append(ents)
    return SimNode(1, st, witness=False)


def test_fewest_voters_counts_a_removal_down_to_one_voter_then_a_witness_added() -> None:
    n = _node_with(
        {1, 2},
        [ConfChange(ConfChangeType.REMOVE, 2), ConfChange(ConfChangeType.ADD_WITNESS, 5)],
    )
    assert fewest_voters(n, 1) == 1
    assert fewest_voters(n, 3) == 2  # from index 3 on only {1, witness 5} was in effect


def test_fewest_voters_keeps_two_when_no_configuration_had_fewer() -> None:
    n = _node_with({1, 2}, [ConfChange(ConfChangeType.ADD_WITNESS, 5)])
    assert fewest_voters(n, 1) == 2
