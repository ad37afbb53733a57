"""Demos: ``python -m nexus_raft.demo`` (cluster; ``--storage`` for the storage demo)."""
