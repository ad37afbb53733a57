"""nexus_raft.transport."""
