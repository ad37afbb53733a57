"""nexus_raft.kv.client: the KV client (``Client``, async; ``SyncClient``, blocking).

``client`` (the public API), ``router`` (finds and follows the leader,
retries to a deadline), ``batcher`` (coalesces concurrent calls into Batch
RPCs), ``watch`` (resuming watch streams), ``sync`` (the blocking wrapper)
and ``types``.

May import: :mod:`nexus_raft.kv` (commands, wire, limits),
:mod:`nexus_raft.transport` and :mod:`nexus_raft.errors`; never a node.
"""

from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.sync import SyncClient

__all__ = ["Client", "SyncClient"]
