"""Member endpoints carried by configuration entries.

An ADD_* configuration entry carries the new member's endpoint in its
context. The driver learns it as soon as the entry is appended (the core
sends to a new member from then on, not from its commit) and again from the
whole log at start, because the write that records it is made durable only
by the next synced write: a crash in between must not leave a member of the
configuration whose address nobody knows.
"""

from __future__ import annotations

from collections.abc import Iterable

from nexus_raft.consensus.core.messages import ConfChange, ConfChangeType, Entry, EntryType

__all__ = ["conf_addresses"]


def conf_addresses(entries: Iterable[Entry], *, forget_removed: bool) -> dict[int, str]:
    """Endpoints named by the configuration entries among ``entries`` (log order).

    With ``forget_removed``, a later REMOVE drops what an earlier entry taught
    (reading a whole log back); otherwise removals are ignored (the applied
    removal forgets the member). Undecodable entries are skipped.
    """
    learned: dict[int, str] = {}
    for e in entries:
        if e.type is not EntryType.CONF_CHANGE or not e.data:
            continue
        try:
            cc = ConfChange.decode(e.data)
        except ValueError:
            continue
        if cc.type is ConfChangeType.REMOVE:
            if forget_removed:
                learned.pop(cc.node_id, None)
        elif cc.context:
            learned[cc.node_id] = cc.context.decode("utf-8", "replace")
    return learned
