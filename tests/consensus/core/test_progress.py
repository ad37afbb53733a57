"""Progress states and the in-flight window (flow control)."""

from __future__ import annotations

import pytest

from nexus_raft.consensus.core.messages import MemberKind
from nexus_raft.consensus.core.progress import Inflights, Progress, ProgressState
from nexus_raft.errors import RaftUsageError


def test_inflights_full_and_free() -> None:
    w = Inflights(3)
    for i in (5, 7, 9):
        assert not w.full()
        w.add(i, 10)
    assert w.full()
    with pytest.raises(RaftUsageError):
        w.add(10, 1)
    w.free_le(7)
    assert w.count() == 1 and not w.full()
    w.free_first_one()
    assert w.count() == 0


def test_inflights_byte_limit() -> None:
    w = Inflights(100, max_bytes=50)
    w.add(1, 30)
    assert not w.full()
    w.add(2, 30)
    assert w.full()
    w.free_le(1)
    assert not w.full()


def test_inflights_indexes_must_not_decrease() -> None:
    w = Inflights(4)
    w.add(5, 1)
    with pytest.raises(RaftUsageError):
        w.add(4, 1)


def test_probe_sends_one_message_until_answered() -> None:
    pr = Progress(6, MemberKind.VOTER, 4)
    assert pr.state is ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(8, 0)
    assert pr.is_paused() and pr.next == 6  # probe does not move next optimistically
    assert pr.maybe_update(8)
    assert not pr.is_paused() and pr.match == 8 and pr.next == 9


def test_replicate_is_optimistic_and_bounded() -> None:
    pr = Progress(1, MemberKind.VOTER, 2)
    pr.maybe_update(3)
    pr.become_replicate()
    assert pr.next == 4
    pr.sent_entries(5, 0)
    pr.sent_entries(7, 0)
    assert pr.next == 8 and pr.is_paused()
    pr.maybe_update(5)
    pr.inflights.free_le(5)
    assert not pr.is_paused()


def test_maybe_decr_to_ignores_stale_rejections() -> None:
    pr = Progress(1, MemberKind.VOTER, 8)
    pr.maybe_update(5)
    pr.become_replicate()
    pr.sent_entries(9, 0)
    assert not pr.maybe_decr_to(4, 4)  # older than match: stale
    assert pr.maybe_decr_to(9, 6)
    assert pr.next == 6  # back to match + 1
    pr.become_probe()
    assert pr.next == 6
    assert not pr.maybe_decr_to(3, 0)  # probe only accepts the rejection of next-1
    assert pr.maybe_decr_to(5, 0)
    assert pr.next == 6  # never at or below match


def test_snapshot_state_pauses_until_done() -> None:
    pr = Progress(1, MemberKind.VOTER, 8)
    pr.become_snapshot(20)
    assert pr.is_paused()
    pr.maybe_update(20)
    pr.become_probe()
    assert pr.next == 21 and not pr.is_paused()


def test_match_is_below_next_invariant() -> None:
    pr = Progress(10, MemberKind.VOTER, 8)
    for n in (3, 9, 2, 15):
        pr.maybe_update(n)
        assert pr.match < pr.next
