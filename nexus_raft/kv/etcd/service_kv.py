"""``etcdserverpb.KV``: Range, Put, DeleteRange, Txn, Compact.

Writes are proposed as etcd commands (:mod:`~nexus_raft.kv.etcd.command`)
and applied by the state machine with etcd's rules
(:mod:`~nexus_raft.kv.etcd.apply`); a follower forwards them to the leader
when the node can. Ranges are served by the member itself from one
consistent view: linearizable ones after a read-index barrier (any full
member, as the native API), serializable ones at once.

A range over many keys takes long (every key in it is counted, and a reply
may hold millions), so anything but a single-key read runs in a worker
thread: the event loop keeps sending heartbeats and serving other RPCs
meanwhile (a store snapshot makes the view safe to read from any thread).
A reply over the transport's message limit is refused with a clear error
instead of failing inside gRPC.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nexus_raft.kv.etcd.base import EtcdBase
from nexus_raft.kv.etcd.checks import check_key, check_put, check_txn
from nexus_raft.kv.etcd.command import Kind
from nexus_raft.kv.etcd.errors import EtcdError
from nexus_raft.kv.etcd.ranges import key_range, run_range, state_at
from nexus_raft.transport._generated.etcd import rpc_pb2, rpc_pb2_grpc
from nexus_raft.transport.options import MAX_MESSAGE_BYTES

__all__ = ["KVServicer", "range_response"]


def range_response(sm: Any, request: Any) -> Any:
    """A RangeResponse for ``request`` from ``sm``'s current state (header revision set)."""
    start, end = key_range(request.key, request.range_end)
    resp = rpc_pb2.RangeResponse()
    with sm.read_view() as view:
        view.check_revision(request.revision)
        resp.header.revision = view.revision
        if request.revision <= 0 or request.revision >= view.revision:
            return run_range(view.items(start, end), request, resp)
        past = state_at(view.items(start, end), view.changes_after(request.revision), start, end)
        return run_range(iter(past), request, resp)


class KVServicer(EtcdBase, rpc_pb2_grpc.KVServicer):  # type: ignore[misc]
    """The etcd KV service of one member."""

    async def Range(self, request: Any, context: Any) -> Any:
        """Keys in a range, at the current or a past revision (see ``ranges.py``)."""

        async def work() -> Any:
            check_key(request.key)
            sm = self.state_machine()
            await self.read_barrier(request.serializable, context)
            if request.range_end or request.revision > 0:
                loop = asyncio.get_running_loop()
                resp = await loop.run_in_executor(None, range_response, sm, request)
            else:
                resp = range_response(sm, request)  # one key: cheaper than a thread hop
            self.header(resp.header, resp.header.revision)
            size = resp.ByteSize()
            if size > MAX_MESSAGE_BYTES - 1024:
                raise EtcdError(
                    "response_too_large",
                    f"a range reply of {size} bytes is over the {MAX_MESSAGE_BYTES >> 20} MiB "
                    "message limit; ask for fewer keys (limit) or page through the range",
                )
            return resp

        return await self.answer(context, work)

    async def Put(self, request: Any, context: Any) -> Any:
        """Write one key (``prev_kv``, ``lease``, ``ignore_value``/``ignore_lease``)."""

        async def work() -> Any:
            check_put(request)
            return await self.propose(Kind.PUT, request, context)

        return await self.answer(context, work)

    async def DeleteRange(self, request: Any, context: Any) -> Any:
        """Delete the keys of a range in one revision; ``deleted`` counts them."""

        async def work() -> Any:
            check_key(request.key)
            return await self.propose(Kind.DELETE_RANGE, request, context)

        return await self.answer(context, work)

    async def Txn(self, request: Any, context: Any) -> Any:
        """Compares, then the success or failure operations, atomically."""

        async def work() -> Any:
            check_txn(request)
            return await self.propose(Kind.TXN, request, context)

        return await self.answer(context, work)

    async def Compact(self, request: Any, context: Any) -> Any:
        """Drop the history before a revision (reads and watches from before it fail)."""

        async def work() -> Any:
            return await self.propose(Kind.COMPACT, request, context)

        return await self.answer(context, work)
