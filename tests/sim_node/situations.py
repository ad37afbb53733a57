"""The node simulator's coverage table: the situations its seeds must reach.

Printed at the end of every run (``python -m tests.sim_node``); a row at zero
fails the run, so a clean result can never hide a state that was not reached.
"""

from __future__ import annotations

from tests.sim.coverage import Situations

__all__ = ["SITUATIONS"]

SITUATIONS = Situations(
    "node simulator",
    [
        # --- crashes and the disk -------------------------------------------------------
        ("crash inside a Ready save", "a member died between two writes of saving a Ready"),
        ("restore interrupted by a crash",
         "a member died inside KVStateMachine.restore (snapshot install)"),
        ("crash between restore and its log save",
         "a member died after restoring a snapshot, saving the snapshot into its log"),
        ("crash inside a compaction", "a member died inside LogStore.create_snapshot"),
        ("crash inside drop_tree", "a member died inside Store.drop_tree"),
        ("crash while recovering at start", "a member died while opening its store"),
        ("power loss lost unsynced writes", "a power cut dropped writes that were not synced"),
        ("member killed and restarted", "kill -9 then a new process on the same disk"),
        ("member shut down cleanly and restarted", "a clean stop, then a new process"),
        ("member paused past an election timeout",
         "a process stopped (SIGSTOP) longer than an election timeout, then resumed"),
        # --- snapshots -----------------------------------------------------------------
        ("snapshot installed by a member", "a follower restored a snapshot from its leader"),
        ("snapshot sent to a member that was just added",
         "a newly added member caught up through a snapshot"),
        ("snapshot upload interrupted", "a snapshot stream broke before it was acknowledged"),
        # --- membership ----------------------------------------------------------------
        ("member added", "a new member joined the running cluster"),
        ("two full voters", "the configuration had exactly two full voters and no witness"),
        ("one full voter and a witness",
         "the configuration had one full voter plus a witness (the witness keeps payloads)"),
        ("grew back to three full voters", "after a shrink, three full voters again"),
        ("leader removed itself", "the leader proposed its own removal, and it committed"),
        ("witness removed", "the witness was removed from the configuration"),
        ("down member removed", "a member that was down was removed"),
        ("configuration change refused", "a change was refused (another pending, or too soon)"),
        ("transfer during a configuration change",
         "a leadership transfer started while a configuration change was in flight"),
        ("leadership transferred", "a transfer completed: the target leads"),
        # --- network, clock and clients --------------------------------------------------
        ("fresh leader isolated before its first entry committed",
         "a new leader was cut off right after its election"),
        ("partition healed", "a partition (two or more groups) was healed"),
        ("one-way cut", "a link was cut in one direction only"),
        ("client answers lost", "a member's answers to a client were dropped for a while"),
        ("retried write deduplicated by its session",
         "a write committed twice and the second copy answered the first's result"),
        ("ReadIndex answered across a leader change",
         "a linearizable read started under one leader and was answered under another"),
        ("linearizable read served by a follower",
         "a follower answered a linearizable read (ReadIndex through the leader)"),
        ("clock jumped forward", "a member's wall clock jumped ahead (session timestamps)"),
        ("clock jumped back", "a member's wall clock jumped back"),
        ("watch rebuilt the final state",
         "a client watch across the faults delivered every change once, in order"),
        ("cluster recovered after the faults",
         "after healing, every member converged and new writes and reads succeeded"),
    ],
)
