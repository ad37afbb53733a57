"""nexus_raft.cli."""
