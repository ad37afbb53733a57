"""Majority quorum math, kept pure so it can be property-tested against a reference.

Witnesses are voters: they count toward election and commit quorums exactly
like full voters (the payload rule is applied on top, in the leader).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

__all__ = ["VoteResult", "committed_index", "majority", "vote_result"]


class VoteResult(enum.Enum):
    """Outcome of an election tally so far."""

    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def majority(n: int) -> int:
    """Smallest number of members that is more than half of ``n``."""
    return n // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of ``voters`` has (missing ids count as 0).

    With no voters nothing is committed through a quorum, so the answer is 0.
    Invariant: at least ``majority(len(voters))`` voters have ``match >= result``.
    """
    n = len(voters)
    if n == 0:
        return 0
    if n == 1:
        (only,) = voters
        return match.get(only, 0)
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[majority(n) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant.

    Votes from ids that are not voters are ignored.
    """
    granted = rejected = 0
    for v in voters:
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING
