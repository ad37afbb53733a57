"""Batch: a list of writes applied atomically by ``Store.apply_batch``/``Tree.apply_batch``."""

from __future__ import annotations

from typing import TypeAlias

from nexus_raft.storage._codec import check_tree_name, encode_key, encode_value
from nexus_raft.storage.handle import TreeHandle as Tree

# Which tree an operation targets: None = the tree the batch is applied to
# (the default tree for ``Store.apply_batch``), a tree name, or a Tree handle.
TreeRef: TypeAlias = str | Tree | None
# (target, key, value); value None means remove.
Op: TypeAlias = tuple[TreeRef, bytes, bytes | None]


class Batch:
    """Writes collected in memory and applied all-or-nothing.

    Nothing is visible to readers until the batch is applied, and then all of
    it is, in one LevelDB write. A batch can span trees: pass ``tree=`` (a
    name or a :class:`Tree` of the same store) to an operation. Arguments are
    validated when the operation is added, so a bad key fails at the line
    that added it. A batch may be applied more than once.

    Example::

        batch = Batch()
        batch.insert(b"k1", b"v1")
        batch.remove(b"k0")
        batch.insert("alice", b"{}", tree="users")
        store.apply_batch(batch)
    """

    # Invariant: _ops[i] is (key, value-or-None); _targets maps the index of an
    # operation that named a tree to that tree (sparse, usually empty). Keeping
    # the common case free of tree bookkeeping lets a one-tree batch of inserts
    # be applied by a C-level loop (see Store._apply_batch).
    __slots__ = ("_append", "_has_removes", "_ops", "_targets")

    def __init__(self) -> None:
        self._ops: list[tuple[bytes, bytes | None]] = []
        # Bound once: insert() is the per-operation hot path of batch building.
        self._append = self._ops.append
        self._targets: dict[int, str | Tree] = {}
        self._has_removes = False

    def insert(self, key: bytes | str, value: bytes | bytearray | memoryview,
               *, tree: TreeRef = None) -> None:
        """Add ``key = value`` (in ``tree``, or the tree the batch is applied to)."""
        if type(key) is not bytes:
            key = encode_key(key, "key")
        if type(value) is not bytes:
            value = encode_value(value, "value")
        if tree is not None:
            self._target(tree)
        self._append((key, value))

    def remove(self, key: bytes | str, *, tree: TreeRef = None) -> None:
        """Add the removal of ``key`` (absent keys are fine)."""
        if type(key) is not bytes:
            key = encode_key(key, "key")
        if tree is not None:
            self._target(tree)
        self._append((key, None))
        self._has_removes = True

    def _target(self, tree: str | Tree) -> None:
        """Record that the operation about to be appended goes to ``tree``."""
        if isinstance(tree, str):
            check_tree_name(tree, "tree")
        elif not isinstance(tree, Tree):
            raise TypeError(
                f"tree must be a tree name (str) or a Tree, not {type(tree).__name__}"
            )
        self._targets[len(self._ops)] = tree

    def clear(self) -> None:
        """Forget every operation added so far."""
        self._ops.clear()
        self._targets.clear()
        self._has_removes = False

    @property
    def ops(self) -> list[Op]:
        """The operations, as (tree, key, value-or-None), in the order they were added."""
        targets = self._targets
        return [(targets.get(i), key, value) for i, (key, value) in enumerate(self._ops)]

    def __len__(self) -> int:
        return len(self._ops)

    def __repr__(self) -> str:
        return f"Batch({len(self._ops)} ops)"
