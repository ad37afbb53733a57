"""Deterministic Raft core: no I/O, no clocks, no global randomness."""
