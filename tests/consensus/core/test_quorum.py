"""Quorum math against a brute-force reference, over random inputs."""

from __future__ import annotations

import itertools
import random

from nexus_raft.consensus.core.quorum import VoteResult, committed_index, majority, vote_result


def reference_committed(voters: list[int], match: dict[int, int]) -> int:
    """Largest index i such that more than half of the voters have match >= i."""
    if not voters:
        return 0
    best = 0
    for i in sorted({match.get(v, 0) for v in voters}):
        if sum(1 for v in voters if match.get(v, 0) >= i) * 2 > len(voters):
            best = max(best, i)
    return best


def reference_vote(voters: list[int], votes: dict[int, bool]) -> VoteResult:
    """Won if a majority granted; lost if no completion of the pending votes can win."""
    pending = [v for v in voters if v not in votes]
    outcomes = set()
    for fill in itertools.product([True, False], repeat=len(pending)):
        full = dict(votes)
        full.update(zip(pending, fill, strict=False))
        outcomes.add(sum(1 for v in voters if full.get(v)) * 2 > len(voters))
    if outcomes == {True}:
        return VoteResult.WON
    if outcomes == {False}:
        return VoteResult.LOST
    return VoteResult.PENDING


def test_majority_is_more_than_half() -> None:
    for n in range(0, 12):
        assert majority(n) * 2 > n
        assert (majority(n) - 1) * 2 <= n


def test_committed_index_matches_reference() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        n = rng.randrange(0, 8)
        voters = rng.sample(range(1, 20), n)
        match = {v: rng.randrange(0, 10) for v in voters if rng.random() < 0.9}
        match[99] = 1000  # non-voters never count
        assert committed_index(voters, match) == reference_committed(voters, match)


def test_vote_result_matches_reference() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        n = rng.randrange(1, 8)
        voters = rng.sample(range(1, 20), n)
        votes = {v: rng.random() < 0.5 for v in voters if rng.random() < 0.7}
        votes[99] = True  # a vote from a non-voter is ignored
        assert vote_result(voters, votes) == reference_vote(voters, votes)


def test_witness_counts_like_any_voter() -> None:
    # 2 full voters + 1 witness: leader + witness is a majority.
    assert committed_index({1, 2, 3}, {1: 5, 2: 0, 3: 5}) == 5
    assert vote_result({1, 2, 3}, {1: True, 3: True}) is VoteResult.WON
