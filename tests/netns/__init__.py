"""Partition tests on real network namespaces (see test_partitions.py)."""
