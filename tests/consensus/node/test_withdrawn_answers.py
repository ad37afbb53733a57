"""A follower's answer to a snapshot or append is found even when the step withdrew older acks.

Found by the node simulator (seed 2174 of ``python -m tests.sim_node``): a
follower that installs a newer leader's snapshot takes its queued
acknowledgements of the replaced entries back out of the core's outgoing
messages (tests/consensus/core/test_overwritten_ack.py). The core rebuilt
that list, so the driver, which looks for the step's answer in the list it
held before the step, never found it: every InstallSnapshot failed with "the
core did not answer SnapshotRequest", the leader sent a new snapshot each
time, and with frequent compaction the follower never caught up (its
applied index stayed behind the commit for good). The caller tied to a
withdrawn acknowledgement was also left waiting for its timeout.

The core is the real one; the driver's part is :class:`Answers` plus the
contract the driver keeps after each step (hand ``withdrawn`` to
``Answers.withdraw`` and clear it), done here by ``_step``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from nexus_raft.consensus.core import Config, ConfState, Entry, EntryType, MemoryStorage, Raft
from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    HardState,
    Message,
    SnapshotMeta,
    SnapshotRequest,
)
from nexus_raft.consensus.node.answers import Answers, RequestRefused
from nexus_raft.errors import NexusRaftError


def _follower() -> Raft:
    storage = MemoryStorage(ConfState(frozenset({1, 2, 3})))
    storage.set_hard_state(HardState(1, 0, 0))
    return Raft(Config(id=2), storage, random.Random(0))


def _stepper(r: Raft, answers: Answers) -> Callable[[Message], NexusRaftError | None]:
    def step(m: Message) -> NexusRaftError | None:
        try:
            r.step(m)
        except NexusRaftError as exc:
            return exc
        finally:
            if r.withdrawn:  # what Driver._try_step does after every step
                answers.withdraw(r.withdrawn)
                r.withdrawn.clear()
        return None

    return step


def test_snapshot_install_that_withdraws_an_old_ack_is_still_answered() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        r, answers = _follower(), Answers()
        step = _stepper(r, answers)
        old = loop.create_future()
        ents = tuple(Entry(i, 1, EntryType.NORMAL, b"old%d" % i) for i in (1, 2, 3))
        answers.step_request(
            AppendRequest(frm=1, to=2, term=1, prev_index=0, prev_term=0, entries=ents),
            old,
            lambda: r.msgs,
            step,
        )
        assert not old.done()  # tied to its ack, which waits for the next Ready
        snap = SnapshotMeta(index=2, term=2, conf_state=ConfState(frozenset({1, 2, 3})))
        installed = loop.create_future()
        answers.step_request(
            SnapshotRequest(frm=3, to=2, term=2, snapshot=snap), installed, lambda: r.msgs, step
        )
        # The old leader's caller learns at once that its ack was taken back.
        assert old.done()
        with pytest.raises(RequestRefused, match="withdrawn"):
            old.result()
        assert not installed.done()  # answered with the Ready, after persisting
        for m in r.ready().messages:
            answers.deliver(m)
        answer = installed.result()  # failed 'the core did not answer' before the fix
        assert isinstance(answer, AppendResponse)
        assert (answer.to, answer.term, answer.index) == (3, 2, 2)

    asyncio.run(body())


def test_conflicting_append_that_withdraws_an_old_ack_is_still_answered() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        r, answers = _follower(), Answers()
        step = _stepper(r, answers)
        first = loop.create_future()
        ents = tuple(Entry(i, 1, EntryType.NORMAL, b"old%d" % i) for i in (1, 2, 3))
        answers.step_request(
            AppendRequest(frm=1, to=2, term=1, prev_index=0, prev_term=0, entries=ents),
            first,
            lambda: r.msgs,
            step,
        )
        second = loop.create_future()
        new = (Entry(2, 2, EntryType.NORMAL, b"new2"),)
        answers.step_request(
            AppendRequest(frm=3, to=2, term=2, prev_index=1, prev_term=1, entries=new),
            second,
            lambda: r.msgs,
            step,
        )
        assert isinstance(first.exception(), RequestRefused)
        for m in r.ready().messages:
            answers.deliver(m)
        answer = second.result()
        assert isinstance(answer, AppendResponse)
        assert (answer.to, answer.index) == (3, 2)

    asyncio.run(body())
