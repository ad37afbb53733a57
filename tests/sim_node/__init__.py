"""The whole-node deterministic simulator (``python -m tests.sim_node``).

Where ``tests/sim`` runs the sans-I/O Raft core alone, this runs N complete
members in one process: the real ``RaftNode`` driver, durable log, applier,
``KVStateMachine`` (sessions, watches) and ``KVService``, and the real
``Client`` with its retry logic, on a virtual clock (``loop``), over a
simulated network (``net``, ``transport``, ``kvnet``) and a simulated disk
(``nexus_raft.storage.simulated``) that loses unsynced writes at a power cut
and can crash a member between any two writes. Faults (``faults``),
membership changes (``membership``) and a recorded client workload
(``workload``) run per seed (``params``, ``scenario``); the checks
(``observe``, ``sim``) stop a seed at the first broken rule, ``known``
recognises the violations of reported bugs still being fixed (``--tolerate``),
and the coverage table (``situations``) shows what the seeds reached.
"""
