"""nexus_raft.witness."""
