"""The seeded deterministic cluster simulator (``python -m tests.sim``).

Real Raft cores (``nexus_raft.consensus.core``) on MemoryStorage, a seeded
network with loss, duplication, delay, reordering and (asymmetric)
partitions, crash-restarts that lose unpersisted state, membership churn,
leadership transfers, snapshots, client writes and ReadIndex reads, with
every safety invariant checked incrementally after each step and liveness
checked after the faults stop. Modules: ``network`` (links), ``checker``
(invariants), ``cluster`` / ``node`` (driving the cores), ``ops`` (faults
and client operations), ``params`` (what a seed decides), ``runner`` (one
seed, the witness stall scenario, liveness), ``__main__`` (the CLI).
"""
