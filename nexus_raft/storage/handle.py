"""TreeHandle: what names a tree in a Batch, apart from the Tree class itself.

:class:`~nexus_raft.storage.tree.Tree` derives from it; :class:`Batch`
checks its ``tree=`` arguments against it. Keeping the base here lets
``batch`` and ``tree`` each import only downward (no import cycle).
"""

from __future__ import annotations

__all__ = ["TreeHandle"]


class TreeHandle:
    """Base of every tree of a store: a ``name`` and a catalog ``tree_id``."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """The tree's name."""
        raise NotImplementedError

    @property
    def tree_id(self) -> int:
        """The tree's catalog id."""
        raise NotImplementedError
