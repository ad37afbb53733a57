"""nexus_raft.storage."""
