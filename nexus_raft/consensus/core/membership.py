"""Single-server membership changes: validation and application.

Rules (one table, one place):

============  ==================================  =====================================
change        allowed when the node is            result
============  ==================================  =====================================
ADD_VOTER     absent, or a learner                voter (a learner is promoted)
ADD_LEARNER   absent                              learner
ADD_WITNESS   absent                              voter and witness
REMOVE        any member                          absent
============  ==================================  =====================================

A configuration must always keep at least one full voter (a voter that is not
a witness): a cluster of witnesses holds no payloads and could commit nothing.

A change takes effect as soon as its entry is *appended* (not when committed),
so every node derives the same configuration from the same log prefix. The
leader validates a change before appending it; a follower applies whatever
the leader appended, and :func:`apply_conf_change` leaves the configuration
unchanged for an invalid change so that every node still agrees.
"""

from __future__ import annotations

from collections.abc import Iterable

from nexus_raft.consensus.core.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
)

__all__ = ["apply_conf_change", "conf_state_after", "validate_conf_change"]


def validate_conf_change(cs: ConfState, cc: ConfChange) -> str | None:
    """Why ``cc`` cannot be applied to ``cs``, or None when it can."""
    if cc.node_id <= 0:
        return "node id must be positive"
    kind = cs.kind(cc.node_id)
    if cc.type is ConfChangeType.ADD_VOTER:
        if kind is not None and cc.node_id not in cs.learners:
            return f"node {cc.node_id} is already a {kind.value}"
        return None
    if cc.type in (ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_WITNESS):
        if kind is not None:
            return f"node {cc.node_id} is already a {kind.value}"
        return None
    # REMOVE
    if kind is None:
        return f"node {cc.node_id} is not a member"
    if cs.full_voters == {cc.node_id}:
        return "cannot remove the last full voter"
    return None


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``; ``cs`` itself when ``cc`` is invalid."""
    if validate_conf_change(cs, cc) is not None:
        return cs
    nid = cc.node_id
    if cc.type is ConfChangeType.ADD_VOTER:
        return ConfState(cs.voters | {nid}, cs.learners - {nid}, cs.witnesses)
    if cc.type is ConfChangeType.ADD_LEARNER:
        return ConfState(cs.voters, cs.learners | {nid}, cs.witnesses)
    if cc.type is ConfChangeType.ADD_WITNESS:
        return ConfState(cs.voters | {nid}, cs.learners, cs.witnesses | {nid})
    return ConfState(cs.voters - {nid}, cs.learners - {nid}, cs.witnesses - {nid})


def conf_state_after(cs: ConfState, entries: Iterable[Entry]) -> ConfState:
    """Apply every configuration entry of ``entries`` (in order) to ``cs``."""
    for e in entries:
        if e.type is EntryType.CONF_CHANGE and e.data is not None:
            cs = apply_conf_change(cs, ConfChange.decode(e.data))
    return cs
