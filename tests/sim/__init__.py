"""The seeded deterministic cluster simulator (``python -m tests.sim``).

Real Raft cores (``nexus_raft.consensus.core``) on MemoryStorage, a seeded
network with loss, duplication, delay, reordering and (asymmetric)
partitions, crash-restarts that lose unpersisted state, membership churn,
leadership transfers, snapshots, client writes and ReadIndex reads, with
every safety invariant checked incrementally after each step and liveness
checked after the faults stop. Modules: ``network`` (links), ``checker``
(invariants), ``cluster`` / ``node`` (driving the cores), ``ops`` (faults,
client operations, membership churn down to two voters, one voter and one
full voter plus a witness and back), ``params`` (what a seed decides),
``runner`` (one seed; the witness stall scenario; long seeds of 20,000+
ticks made of phases of faults and changes; liveness), ``situations`` (the
coverage table: named situations every ``make sim`` must reach),
``coverage`` (the table machinery, shared with the node simulator),
``__main__`` (the CLI).

Beyond the Raft paper's invariants the cluster checks the driver rules the
node relies on: a granted vote and an acknowledged append are persisted
before they are sent (the leader's own appends may leave before its fsync,
as the node driver's parallel append does), one configuration change at a
time, and no change before the leader's first entry commits.
"""
