"""Coalescing of concurrent client operations into ``Batch`` RPCs.

One RPC per write cannot go faster than gRPC's unary call rate, so the client
queues operations (put, delete, cas, linearizable get) and sends them in
batches:

* while fewer than ``eager_inflight`` (2) batches are in flight, the queue
  is sent on the next event-loop iteration: a lone caller pays no extra
  latency, callers that wake up together still leave together, and
  operations arriving while one batch is out do not wait for its answer
  (the leader appends them while the first batch is being fsync'd);
* beyond that, new operations wait; they go out when a batch returns, or
  as soon as ``max_batch`` of them wait (up to ``max_inflight`` batches at
  a time).

Each operation keeps its own deadline. A batch-level failure re-queues the
batch (same client_id/seq, so a retry is applied once); per-operation
retryable errors (NOT_LEADER, UNAVAILABLE, TIMEOUT) re-queue just that
operation (after NOT_LEADER or UNAVAILABLE, for another member); anything
else fails it. An operation whose deadline passes fails
with the last error seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nexus_raft.errors import NexusRaftError, NotLeader, Timeout, Unavailable
from nexus_raft.kv.client.router import Backoff, Router
from nexus_raft.kv.wire import RETRYABLE_CODES, UNAVAILABLE, exception_from_error, kv_pb2

__all__ = ["Batcher"]

_log = logging.getLogger(__name__)


_EAGER_INFLIGHT = 2
"""Batches sent as soon as operations wait (more wait for an answer or a full batch)."""

MAX_BATCH_BYTES = 4 << 20
"""A batch stops growing at this many bytes of operations (well under gRPC's 16 MiB cap)."""


@dataclass(eq=False)
class _Pending:
    op: Any  # kv_pb2.BatchOp
    future: asyncio.Future[Any]
    deadline: float
    size: int
    last_error: NexusRaftError | None = field(default=None)


class Batcher:
    """Queue of pending operations and the tasks that send them."""

    def __init__(
        self,
        router: Router,
        *,
        max_batch: int = 256,
        max_inflight: int = 4,
    ) -> None:
        self._router = router
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._eager = min(_EAGER_INFLIGHT, max_inflight)
        self._queue: deque[_Pending] = deque()
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._backoff = Backoff(router.rng)
        self._closed = False
        self._pump_scheduled = False
        self.batches_sent = 0
        """Batch RPCs sent so far (attempts included): lets tests and benchmarks see coalescing."""

    async def submit(self, op: Any, deadline: float) -> Any:
        """Queue ``op`` (a ``kv_pb2.BatchOp``) and return its ``BatchResult`` once OK.

        Raises the operation's error, or ``Timeout``/``Unavailable``/``NotLeader``
        when its deadline passes first.
        """
        if self._closed:
            raise NexusRaftError("the client is closed")
        loop = asyncio.get_running_loop()
        pending = _Pending(op, loop.create_future(), deadline, op.ByteSize())
        self._queue.append(pending)
        if not self._pump_scheduled:
            # Pump on the next loop iteration, not now: callers woken together
            # (e.g. by the previous batch's answers) all queue first and leave
            # in one batch instead of one lone op followed by the rest.
            self._pump_scheduled = True
            loop.call_soon(self._scheduled_pump)
        return await pending.future

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        if not self._closed:
            self._pump()

    async def close(self) -> None:
        """Fail queued operations and wait for in-flight batches to end."""
        self._closed = True
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(NexusRaftError("the client is closed"))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- internals ----------------------------------------------------------------------

    def _pump(self) -> None:
        """Start batches while the flush rule allows (see the module docstring)."""
        while self._queue and self._inflight < self._max_inflight:
            if self._inflight >= self._eager and len(self._queue) < self._max_batch:
                return
            items: list[_Pending] = []
            size = 0
            while self._queue and len(items) < self._max_batch:
                if items and size + self._queue[0].size > MAX_BATCH_BYTES:
                    break  # a big value goes in the next batch (alone if need be)
                item = self._queue.popleft()
                if not item.future.done():  # the caller was cancelled
                    items.append(item)
                    size += item.size
            if not items:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._send(items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[_Pending]) -> None:
        try:
            await self._send_once(items)
        except asyncio.CancelledError:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(NexusRaftError("the client is closed"))
            raise
        finally:
            self._inflight -= 1
            if not self._closed:
                self._pump()

    async def _send_once(self, items: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        # The router's cluster id: it may have been learned since the client started.
        ops = [i.op for i in items]
        request = kv_pb2.BatchRequest(cluster_id=self._router.cluster_id, ops=ops)
        deadline = min(i.deadline for i in items)
        self.batches_sent += 1
        try:
            has_write = any(i.op.WhichOneof("op") != "get" for i in items)
            resp, target = await self._router.call(
                "Batch", request, deadline=deadline, learn_leader=has_write
            )
        except NexusRaftError as exc:
            # Nothing is known about these operations; expired ones fail with
            # this error, the rest go back to the front of the queue.
            self._retry_or_fail(items, exc, loop.time(), requeue=_is_retryable(exc))
            return
        retry: list[_Pending] = []
        for item, result in zip(items, resp.results, strict=False):
            if item.future.done():
                continue
            error = getattr(result, result.WhichOneof("result")).error
            if error.code == kv_pb2.OK:
                item.future.set_result(result)
            elif error.code in RETRYABLE_CODES:
                failure = exception_from_error(error, where=target)
                item.last_error = failure
                retry.append(item)
                # NOT_LEADER steers the retry to the named leader (or elsewhere).
                # UNAVAILABLE inside an answered batch means this member cannot
                # serve the operation (its log or state machine failed, it is
                # shutting down, the proposal was dropped): an OK batch is no
                # proof of leadership then, so the retry goes to another
                # member. A TIMEOUT says nothing against the member.
                if isinstance(failure, NotLeader):
                    if failure.leader_address:
                        self._router.note_leader(failure.leader_address)
                    else:
                        self._router.mark_failed(target)
                elif error.code == UNAVAILABLE:
                    self._router.mark_failed(target)
            else:
                item.future.set_exception(exception_from_error(error, where=target))
        for item in items[len(resp.results) :]:  # a short answer: treat as not attempted
            retry.append(item)
        if retry:
            await asyncio.sleep(self._backoff.delay())
            self._retry_or_fail(retry, None, loop.time(), requeue=True)
        else:
            self._backoff.reset()

    def _retry_or_fail(
        self, items: list[_Pending], exc: NexusRaftError | None, now: float, *, requeue: bool
    ) -> None:
        for item in reversed(items):  # appendleft in reverse keeps their order
            if item.future.done():
                continue
            error = exc or item.last_error
            if requeue and now < item.deadline:
                item.last_error = error
                self._queue.appendleft(item)
            else:
                item.future.set_exception(
                    error or Timeout("operation timed out before it was answered")
                )


def _is_retryable(exc: NexusRaftError) -> bool:
    return isinstance(exc, (NotLeader, Unavailable, Timeout))
