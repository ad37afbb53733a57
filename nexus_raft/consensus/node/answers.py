"""Pairing peers' requests with the core's answers to them (used by the driver).

A peer's request is stepped into the core with a future that the core's
answer completes. Answers are paired with requests explicitly, never by
arrival order across kinds (a leader answers a forwarded read only after a
heartbeat round, but a vote from the same sender at once):

- votes, appends, heartbeats and snapshots are answered inside ``step()``:
  the answer is the response of the matching kind to the sender among the
  messages that step produced, and the future is tied to that very message;
- a forwarded ReadIndexRequest is answered later, by a ReadIndexResponse
  carrying its context: futures wait under (sender, context).

A request the core refuses (it raises) or leaves unanswered fails at once
with :class:`RequestRefused`: it never holds a slot that a later answer could
fill, and never waits for a timeout.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from nexus_raft.consensus.core.messages import (
    AppendRequest,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotRequest,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.errors import NexusRaftError
from nexus_raft.transport.errors import PeerRefused

__all__ = ["Answers", "RequestRefused"]

# The answer the core gives, inside step(), to each kind of request (a
# ReadIndexRequest is answered later).
_ANSWER_KINDS: dict[type, type] = {
    VoteRequest: VoteResponse,
    AppendRequest: AppendResponse,
    Heartbeat: HeartbeatResponse,
    SnapshotRequest: AppendResponse,
}

Future = asyncio.Future[Message]
Step = Callable[[Message], "NexusRaftError | None"]


class RequestRefused(PeerRefused):
    """The core refused a peer's request (or had no answer for it).

    A :class:`~nexus_raft.transport.errors.PeerRefused`: the transport answers
    it at once (PERMISSION_DENIED) and logs it rate-limited.
    """

    def __init__(self, message: str, sender: int) -> None:
        super().__init__(message, kind="refused by the core", sender=sender)


class Answers:
    """The futures of peers' requests waiting for the core's answers.

    Invariant: every future held here belongs to a request the core accepted
    and will answer (in the current Ready, or for a read, once its heartbeat
    round ends or the leader steps down); ``fail_all`` empties it.
    """

    __slots__ = ("_by_message", "_reads")

    def __init__(self) -> None:
        # id(answer) -> (answer, future): the message is held, so its id is
        # not reused while it waits here.
        self._by_message: dict[int, tuple[Message, Future]] = {}
        # (sender, context) -> futures of forwarded reads, in arrival order.
        self._reads: dict[tuple[int, bytes], collections.deque[Future]] = {}

    def step_request(
        self, m: Message, fut: Future, outbox: Callable[[], list[Message]], step: Step
    ) -> None:
        """Step ``m`` (answered within the step) and tie ``fut`` to its answer.

        ``outbox()`` is the core's outgoing message list, where the answer
        appears. The step may also take earlier messages back out of it
        (withdrawn acknowledgements), so the answer is found as the newest
        message of the answer's kind to the sender that was not there
        before the step, not by its position.
        """
        if fut.done():
            return  # the caller gave up before its request was stepped
        prior = {id(x) for x in outbox()}
        refused = step(m)
        if refused is not None:
            fut.set_exception(RequestRefused(f"{type(m).__name__} from {m.frm}: {refused}", m.frm))
            return
        kind = _ANSWER_KINDS.get(type(m))
        for out in reversed(outbox()):
            if type(out) is kind and out.to == m.frm and id(out) not in prior:
                self._by_message[id(out)] = (out, fut)
                return
        fut.set_exception(
            RequestRefused(f"the core did not answer {type(m).__name__} from {m.frm}", m.frm)
        )

    def withdraw(self, messages: list[Message]) -> None:
        """The core took these queued answers back: their callers are refused at once."""
        for x in messages:
            paired = self._by_message.pop(id(x), None)
            if paired is None or paired[0] is not x:
                continue
            fut = paired[1]
            if not fut.done():
                fut.set_exception(
                    RequestRefused(
                        f"answer to {x.to} withdrawn: a newer leader replaced those entries",
                        x.to,
                    )
                )

    def step_read(self, m: ReadIndexRequest, fut: Future, step: Step) -> None:
        """Step a forwarded read; its answer (now or after a heartbeat round) finds ``fut``."""
        if fut.done():
            return
        key = (m.frm, m.context)
        self._reads.setdefault(key, collections.deque()).append(fut)
        refused = step(m)
        if refused is not None:
            self.forget_read(m, fut)
            fut.set_exception(RequestRefused(f"ReadIndexRequest from {m.frm}: {refused}", m.frm))

    def forget_read(self, m: ReadIndexRequest, fut: Future) -> None:
        """Drop ``fut`` (its caller stopped waiting) if it still waits."""
        key = (m.frm, m.context)
        q = self._reads.get(key)
        if q is None:
            return
        try:
            q.remove(fut)
        except ValueError:
            pass
        if not q:
            del self._reads[key]

    def deliver(self, m: Message) -> bool:
        """Complete the request ``m`` answers; False when no caller waits for it."""
        fut: Future | None = None
        if type(m) is ReadIndexResponse:
            key = (m.to, m.context)
            q = self._reads.get(key)
            if q:
                fut = q.popleft()
                if not q:
                    del self._reads[key]
        else:
            paired = self._by_message.pop(id(m), None)
            if paired is not None and paired[0] is m:
                fut = paired[1]
        if fut is None:
            return False
        if not fut.done():
            fut.set_result(m)
        return True

    def fail_all(self, exc: NexusRaftError) -> None:
        """Fail every waiting request (the driver stops)."""
        by_message, self._by_message = self._by_message, {}
        reads, self._reads = self._reads, {}
        waiting = [fut for _, fut in by_message.values()]
        waiting.extend(fut for q in reads.values() for fut in q)
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)
