"""``etcdserverpb.Watch``: the bidirectional watch stream, served by any full member.

One gRPC stream carries any number of watches. Requests are handled in
order by one reader task, so ``created`` replies come back in the order of
the create requests; each watch then has a pump task that moves events from
its :class:`~nexus_raft.kv.watch_hub.WatchStream` (history from
``start_revision``, then live) into the stream's one outgoing queue.

* ``start_revision`` older than the retained history: ``created``, then a
  response with ``compact_revision`` (the oldest revision still available)
  and ``canceled``, as etcd sends; the same when a slow watch falls behind
  history trimmed meanwhile.
* Filters (NOPUT, NODELETE), ``prev_kv`` (each event carries the key's
  previous state), cancel, caller-chosen ``watch_id``.
* Progress: a ``progress_request`` is answered on watch id -1 with a
  revision every watch on the stream has delivered all events up to;
  watches created with ``progress_notify`` get one every
  ``progress_interval`` seconds while they are caught up (etcd: 10 min).
* ``fragment``: responses over 1.5 MiB are split (see ``watch_events.py``).

Invariant behind progress answers: the queue is FIFO, and a pump never
suspends while it holds events taken from its stream but not yet queued,
except on a full queue, where it records the oldest held revision
(``_Watch.holding``) so progress never claims past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from nexus_raft.errors import Compacted
from nexus_raft.kv.etcd.base import EtcdBase
from nexus_raft.kv.etcd.errors import ERRORS
from nexus_raft.kv.etcd.ranges import key_range
from nexus_raft.kv.etcd.watch_events import fragments, to_event, wanted
from nexus_raft.kv.watch_hub import WatchEvent, WatchStream
from nexus_raft.transport._generated.etcd import rpc_pb2, rpc_pb2_grpc

__all__ = ["WatchServicer"]

_log = logging.getLogger(__name__)

_QUEUE = 256  # responses waiting to be sent on one stream
_BATCH = 1000  # events in one response (more when one revision has more)
_MAX_WATCHES = 10_000  # per stream


@dataclass(eq=False)
class _Watch:
    id: int
    stream: WatchStream
    filters: frozenset[int]
    prev_kv: bool
    fragment: bool
    progress_notify: bool
    task: asyncio.Task[None] | None = None
    holding: int | None = field(default=None)


class _Session:
    """One Watch RPC: its watches, its outgoing queue and its progress bookkeeping."""

    def __init__(self, api: WatchServicer) -> None:
        self.api = api
        self.out: asyncio.Queue[Any] = asyncio.Queue(_QUEUE)
        self.watches: dict[int, _Watch] = {}
        self.next_id = 0

    # --- requests ----------------------------------------------------------------------

    async def read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for req in requests:
                which = req.WhichOneof("request_union")
                if which == "create_request":
                    await self.create(req.create_request)
                elif which == "cancel_request":
                    await self.cancel(req.cancel_request.watch_id)
                elif which == "progress_request":
                    await self.put(self.response(-1, self.progress_revision()))
        finally:
            await self.out.put(None)

    def response(self, watch_id: int, revision: int | None = None, **fields: Any) -> Any:
        resp = rpc_pb2.WatchResponse(watch_id=watch_id, **fields)
        self.api.header(resp.header, revision)
        return resp

    async def put(self, response: Any) -> None:
        await self.out.put(response)

    async def create(self, req: Any) -> None:
        sm = self.api.node.state_machine
        if sm is None or len(self.watches) >= _MAX_WATCHES:
            reason = ERRORS["witness"][1] if sm is None else "too many watches on one stream"
            await self.put(self.response(-1, 0, created=True, canceled=True, cancel_reason=reason))
            return
        wid = req.watch_id
        if wid:
            if wid in self.watches:
                await self.put(self.response(-1, None, created=True, canceled=True,
                                             cancel_reason="mvcc: duplicate watch ID provided "
                                             "on the WatchStream"))
                return
        else:
            while self.next_id in self.watches:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        start, end = key_range(req.key, req.range_end)
        compacted = 0
        try:
            stream = sm.watch_range(start, end, max(0, req.start_revision))
        except Compacted as exc:
            compacted = exc.revision or sm.history_floor()
        await self.put(self.response(wid, None, created=True))
        if compacted:
            await self.put(self.response(wid, None, compact_revision=compacted, canceled=True))
            return
        w = _Watch(wid, stream, frozenset(req.filters), req.prev_kv, req.fragment,
                   req.progress_notify)
        self.watches[wid] = w
        w.task = asyncio.ensure_future(self.pump(w))

    async def cancel(self, wid: int) -> None:
        w = self.watches.pop(wid, None)
        if w is None:
            return  # etcd answers nothing for an unknown id
        self.stop(w)
        await self.put(self.response(wid, None, canceled=True))

    def stop(self, w: _Watch) -> None:
        w.stream.close()
        if w.task is not None and w.task is not asyncio.current_task():
            w.task.cancel()

    # --- events ------------------------------------------------------------------------

    async def pump(self, w: _Watch) -> None:
        stream = w.stream
        try:
            while True:
                batch: list[WatchEvent] = [await stream.__anext__()]
                while len(batch) < _BATCH:
                    more = stream.poll()
                    if more is None:
                        break
                    batch.append(more)
                events = [to_event(e, w.prev_kv) for e in batch if wanted(e, w.filters)]
                if not events:
                    continue
                resp = self.response(w.id, batch[-1].revision, events=events)
                w.holding = batch[0].revision
                try:
                    if w.fragment:
                        for piece in fragments(resp):
                            await self.put(piece)
                    else:
                        await self.put(resp)
                finally:
                    w.holding = None
        except StopAsyncIteration:
            pass
        except Compacted as exc:
            sm = self.api.node.state_machine
            floor = exc.revision or (sm.history_floor() if sm is not None else 0)
            self.watches.pop(w.id, None)
            w.stream.close()
            await self.put(self.response(w.id, None, compact_revision=floor, canceled=True))
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("etcd watch %d failed", w.id)
            self.watches.pop(w.id, None)
            w.stream.close()
            await self.put(self.response(w.id, None, canceled=True,
                                         cancel_reason="etcdserver: watch failed"))

    # --- progress ----------------------------------------------------------------------

    def progress_revision(self, only: _Watch | None = None) -> int:
        """A revision all events up to which the stream (or watch ``only``) has queued."""
        sm = self.api.node.state_machine
        if sm is None:
            return 0
        watches = [only] if only is not None else list(self.watches.values())
        with sm._lock:  # no apply between reading the revision and the positions
            rev: int = sm.revision()
            for w in watches:
                if w.holding is not None:
                    rev = min(rev, w.holding - 1)
                elif w.stream.ready():
                    rev = min(rev, w.stream.complete_revision())
                # else: caught up. Publishing happens under the lock held here,
                # whole transactions at a time, so it has taken every event
                # up to the current revision.
        return rev

    async def notify(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            sm = self.api.node.state_machine
            if sm is None:
                continue
            for w in list(self.watches.values()):
                if not w.progress_notify:
                    continue
                rev = self.progress_revision(w)
                if rev >= sm.revision():  # caught up: etcd notifies only then
                    await self.put(self.response(w.id, rev))

    def close(self) -> None:
        for w in list(self.watches.values()):
            self.stop(w)
        self.watches.clear()


class WatchServicer(EtcdBase, rpc_pb2_grpc.WatchServicer):  # type: ignore[misc]
    """The etcd Watch service of one member (``progress_interval`` in seconds)."""

    def __init__(
        self, node: Any, *, timeout: float = 5.0, progress_interval: float = 600.0
    ) -> None:
        super().__init__(node, timeout=timeout)
        self.progress_interval = progress_interval

    async def Watch(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """Serve one watch stream until the client closes it."""
        session = _Session(self)
        reader = asyncio.ensure_future(session.read(request_iterator))
        ticker = asyncio.ensure_future(session.notify(self.progress_interval))
        try:
            while True:
                item = await session.out.get()
                if item is None:
                    break
                yield item
        finally:
            for task in (reader, ticker):
                task.cancel()
            session.close()
            for task in (reader, ticker):
                with contextlib.suppress(BaseException):
                    await task
