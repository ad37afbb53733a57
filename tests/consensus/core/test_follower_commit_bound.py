"""A follower's commit never passes the entries an append verified (Raft §5.3).

The rule is ``commit = min(leaderCommit, index of the last new entry)``: entries
after the append's last one may be a stale tail of an older term that the
leader's log does not have. The leader never sends a commit beyond the entries
of an append today, so a simulator cannot reach a follower that relies on
this rule; this test holds the follower to it on its own (the mutation check's
"follower commits past the leader's entries" mutant must fail here).
"""

from __future__ import annotations

import random

from nexus_raft.consensus.core import Config, ConfState, Entry, EntryType, MemoryStorage, Raft
from nexus_raft.consensus.core.messages import AppendRequest, HardState


def test_follower_does_not_commit_its_unverified_stale_tail() -> None:
    storage = MemoryStorage(ConfState(frozenset({1, 2, 3})))
    storage.append([Entry(i, 1, EntryType.NORMAL, b"old%d" % i) for i in (1, 2, 3)])
    storage.set_hard_state(HardState(1, 0, 0))
    r = Raft(Config(id=2), storage, random.Random(0))
    # Leader 1 of term 2 sends entry 2 (which matches) and says its commit is 3:
    # the follower's entry 3 (term 1) was not part of this append and may be stale.
    r.step(AppendRequest(frm=1, to=2, term=2, prev_index=1, prev_term=1,
                         entries=(Entry(2, 1, EntryType.NORMAL, b"old2"),), commit=3))
    assert r.log.committed == 2
