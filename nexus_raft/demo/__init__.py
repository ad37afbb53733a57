"""Demos: ``python -m nexus_raft.demo`` (cluster; ``--storage`` for the storage demo).

May import: every other package of nexus_raft (it starts real ``nexus-node``
processes); nothing imports it.
"""
