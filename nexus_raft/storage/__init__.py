"""nexus_raft.storage: an embedded, ordered key-value database on LevelDB.

::

    from nexus_raft.storage import Store, Batch

    with Store.open("data") as store:
        users = store.tree("users")
        users.set("alice", b"admin")
        users.compare_and_swap("alice", b"admin", b"owner")
        for key, value in users.scan_prefix("a"):
            ...

Public names: :class:`Store`, :class:`Tree`, :class:`Batch`,
:class:`Snapshot`/:class:`SnapshotTree` (consistent read views),
:class:`Subscriber`/:class:`Event` (prefix watches). Errors live in
:mod:`nexus_raft.errors` (``StorageError`` and its subclasses).

May import: plyvel, orjson and :mod:`nexus_raft.errors`; nothing else of
nexus_raft.
"""

from nexus_raft.storage._layout import DEFAULT_TREE
from nexus_raft.storage.batch import Batch
from nexus_raft.storage.snapshot import Snapshot, SnapshotTree
from nexus_raft.storage.store import ID_BLOCK, Store
from nexus_raft.storage.tree import Tree
from nexus_raft.storage.watch import Event, Subscriber

__all__ = [
    "DEFAULT_TREE",
    "ID_BLOCK",
    "Batch",
    "Event",
    "Snapshot",
    "SnapshotTree",
    "Store",
    "Subscriber",
    "Tree",
]
