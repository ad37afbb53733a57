"""Tests of nexus_raft.consensus."""
