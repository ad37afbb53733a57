"""Linearizability checking for nexus_raft's KV service.

:mod:`tests.lin.checker` decides whether a recorded history of register
operations (put/get/cas/delete per key) is linearizable;
:mod:`tests.lin.history` records such histories from concurrent asyncio clients.
"""
