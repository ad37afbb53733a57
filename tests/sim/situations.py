"""The core simulator's coverage table: the situations its seeds must reach.

Each row is counted where it happens (``cluster.py``, ``ops.py``,
``runner.py``, ``scenes.py``) with ``SITUATIONS.hit(c.stats, name)``; ``make
sim`` prints the table and fails when a row stayed at zero over the seeds it
ran (see ``tests/sim/coverage.py``). The rows name the states where Raft bugs
live (membership edges, leader changes mid-operation, witness payload rules,
truncation, snapshots, reads across leader changes), so a clean run also
says that those states were exercised.
"""

from __future__ import annotations

from tests.sim.coverage import Situations

SITUATIONS = Situations(
    "core simulator coverage",
    (
        ("conf refused: first entry uncommitted",
         "conf change proposed while the leader's first entry is uncommitted (refused)"),
        ("conf refused: change pending",
         "conf change proposed while another one is uncommitted (refused)"),
        ("conf accepted right after election",
         "conf change accepted within two election timeouts of the leader's election"),
        ("two voters", "a configuration of exactly two full voters committed"),
        ("one full voter + witness", "a configuration of one full voter plus a witness committed"),
        ("back from the edge", "three or more voters again after a two-voter configuration"),
        ("witness payload mode, one full voter",
         "witness in payload mode (sent payloads) with one full voter"),
        ("leader removed itself", "the leader's own removal committed and it stepped down"),
        ("leader elected during its own removal",
         "a full voter whose own removal was appended, not committed, won an election "
         "(thesis §4.2.2)"),
        ("witness removed", "removal of a witness committed"),
        ("down member removed", "removal of a crashed member committed"),
        ("transfer during conf change",
         "leadership transfer requested while a conf change is uncommitted"),
        ("transfer completed", "a transfer's target became leader after TimeoutNow"),
        ("fresh leader isolated", "a new leader cut off before its first entry committed"),
        ("crash during conf change", "a member crashed while a conf change was uncommitted"),
        ("crash with unpersisted ready", "a member crashed with a Ready not yet persisted"),
        ("follower truncated suffix", "a follower truncated a conflicting suffix of its log"),
        ("uncommitted conf change truncated",
         "a truncated suffix held a conf change (the configuration rolled back)"),
        ("previous-term entries committed",
         "a leader committed entries of earlier terms by committing one of its own (Figure 8)"),
        ("snapshot to a just-added member",
         "a snapshot sent to a member whose addition is not yet committed or just committed"),
        ("snapshot install lost", "a snapshot send failed (lost or cut) and was reported"),
        ("snapshot installed", "a follower installed a snapshot"),
        ("readindex across leader change",
         "a ReadIndex answered after the cluster moved to a newer term"),
        ("read waited for first commit",
         "a new leader queued a read until its first entry committed"),
        ("witness metadata-only tail at a leader crash",
         "the leader died while a catching-up full voter lacked committed entries and the "
         "witness's log ended with metadata-only entries (issue 10 item 4)"),
        ("stall recovered through witness leader",
         "a witness led to bring a lagging full voter up to date and handed over"),
        ("witness dropped payloads", "a witness dropped payloads below the floor"),
        ("leader stepped down: check quorum", "a leader lost its quorum and stepped down"),
        ("vote survived restart", "a member restarted with a vote in its current term"),
        ("two candidates split vote", "an election round with two candidates in one term"),
        ("long seed", "a seed that ran at least 20,000 ticks with phases of faults and changes"),
    ),
)
