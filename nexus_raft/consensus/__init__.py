"""nexus_raft.consensus."""
