"""The peer handler never hands a peer an answer that is not the answer to its request.

Issue #10 item 6 was a driver that paired a sender's answers with its
requests by arrival order, so a forwarded read took the answer to a later
vote. The driver pairs them explicitly now; the handler checks the pairing
too (kind, addressee and, for a read, its context) and fails the request
with :class:`MismatchedAnswer` rather than answering with someone else's
answer. The node simulator counts every such failure as a violation (the
mutation check's "#10.6" mutant is caught that way). Here the driver is a
stand-in whose answer the test chooses: the check is logic, not I/O.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from nexus_raft.consensus.core.messages import Message, ReadIndexResponse, VoteResponse
from nexus_raft.consensus.node import wire
from nexus_raft.consensus.node.server import MismatchedAnswer, PeerHandler


class _Driver:
    """Answers every request with ``answer`` (what a mispairing driver would do)."""

    def __init__(self, answer: Message) -> None:
        self.id = 1
        self.metrics = SimpleNamespace()
        self.raft = SimpleNamespace(term=3, is_peer_member=lambda nid: True)
        self.answer = answer

    async def request(self, m: Message) -> Message:
        return self.answer


def _read(driver: _Driver, context: bytes = b"ctx-a") -> wire.pb.ReadIndexResponse:
    handler = PeerHandler(driver, None)  # type: ignore[arg-type]
    req = wire.pb.ReadIndexRequest(from_id=2, to=1, term=3, context=context)
    return asyncio.run(handler.read_index(req))


def test_read_answered_with_its_own_response_passes() -> None:
    ok = ReadIndexResponse(frm=1, to=2, term=3, index=7, context=b"ctx-a")
    assert _read(_Driver(ok)).index == 7


def test_read_handed_a_vote_answer_fails_instead_of_answering_the_peer() -> None:
    vote = VoteResponse(frm=1, to=2, term=3, granted=True)
    with pytest.raises(MismatchedAnswer, match="VoteResponse"):
        _read(_Driver(vote))


def test_read_handed_another_reads_answer_fails() -> None:
    other = ReadIndexResponse(frm=1, to=2, term=3, index=4, context=b"ctx-b")
    with pytest.raises(MismatchedAnswer, match="another read"):
        _read(_Driver(other))


def test_read_handed_an_answer_to_another_peer_fails() -> None:
    theirs = ReadIndexResponse(frm=1, to=5, term=3, index=7, context=b"ctx-a")
    with pytest.raises(MismatchedAnswer, match="to 5"):
        _read(_Driver(theirs))
