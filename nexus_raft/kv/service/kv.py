"""KVService: the client-facing gRPC KV API of a node (``kv.proto``, service ``nexus.kv.KV``).

It runs on the node's one listen port next to the peer service
(``node.add_servicer(KVService(node).register)``) and turns each RPC into a
node call: writes become :class:`~nexus_raft.kv.commands.KVCommand`
proposals, reads go through ``node.read_index()`` (linearizable) or straight
to the local state machine (``serializable``).

Followers forward writes (Put, Delete, Cas, the writes of a Batch) and the
admin calls to the leader over their peer connection
(:mod:`~nexus_raft.consensus.node.forward`) and relay the answer, so a
client that reaches any member can write. An OK answer that went through a
follower names the leader in its ``error`` field (code OK), so the client
may go there directly next time. With ``forward=False`` (``nexus-node
--redirect``) a follower answers ``NOT_LEADER`` with the leader's id and
address instead and :class:`~nexus_raft.kv.client.client.Client` re-sends
there. Reads are served by any full member: ``read_index()`` asks the leader
for the commit index and waits until the local state machine has applied it.

Every failure reaches the client as a response ``error`` (see ``kv.proto``);
no handler lets an exception escape, so one bad request never takes the
node's service down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from nexus_raft.errors import InvalidArgument, NotLeader, TooLarge
from nexus_raft.kv.commands import KVCommand, KVOp, KVResult, ResultCode
from nexus_raft.kv.service.backup import BackupRPCs
from nexus_raft.kv.service.base import ServedNode, log_failure
from nexus_raft.kv.service.batch import run_batch
from nexus_raft.kv.service.cluster import ClusterRPCs
from nexus_raft.kv.service.pipeline import serve_pipeline
from nexus_raft.kv.service.ranges import RangeRPCs
from nexus_raft.kv.service.register import add_checked_servicer
from nexus_raft.kv.service.watch import peer_of, watch_messages
from nexus_raft.kv.wire import error_from_exception, kv_pb2, kv_pb2_grpc

__all__ = ["KVService", "ServedNode"]


class KVService(ClusterRPCs, BackupRPCs, RangeRPCs, kv_pb2_grpc.KVServicer):  # type: ignore[misc]
    """The ``nexus.kv.KV`` servicer for one node: ``KVService(node).register(server)``.

    ``cluster_id``: requests naming another non-empty cluster id are refused
    with ``CLUSTER_MISMATCH`` (``None``: the node's own id, if it has one).
    ``timeout`` bounds every proposal and read-index wait (also capped by the
    caller's gRPC deadline). ``limits``: key/value/batch size limits.
    """

    def register(self, server: grpc.aio.Server) -> None:
        """Add this servicer to ``server`` (pass it to ``node.add_servicer``).

        An undecodable request is answered ``INVALID_ARGUMENT`` in its
        response's ``error`` (see :mod:`~nexus_raft.kv.service.register`).
        """
        add_checked_servicer(self, server)

    async def _propose(self, command: KVCommand, budget: float) -> KVResult:
        raw = await self._node.propose(command.encode(), timeout=budget, forward=self._forward)
        result = KVResult.decode(raw)
        if result.code in (ResultCode.OK, ResultCode.CAS_FAILED):
            return result
        if result.code == ResultCode.TOO_LARGE:
            raise TooLarge(result.error or "value too large")
        # INVALID / STALE / ALREADY_APPLIED: the command took no effect and a
        # retry would not change that.
        raise InvalidArgument(f"{result.code.name.lower()}: {result.error}".rstrip(": "))

    async def _read_barrier(self, serializable: bool, budget: float) -> None:
        if not serializable:
            await self._node.read_index(timeout=budget)

    # --- commands from requests --------------------------------------------------------

    def _put_command(self, req: Any) -> KVCommand:
        key = self._limits.check_key(req.key)
        value = self._limits.check_value(req.value)
        return KVCommand(
            KVOp.PUT, key, value, client_id=req.client_id, seq=req.seq, timestamp_ms=self._now_ms()
        )

    def _delete_command(self, req: Any) -> KVCommand:
        key = self._limits.check_key(req.key)
        return KVCommand(
            KVOp.DELETE, key, client_id=req.client_id, seq=req.seq, timestamp_ms=self._now_ms()
        )

    def _cas_command(self, req: Any) -> KVCommand:
        key = self._limits.check_key(req.key)
        expected = None if req.expect_absent else self._limits.check_value(req.expected)
        new = None if req.delete else self._limits.check_value(req.new_value)
        return KVCommand(
            KVOp.CAS,
            key,
            new,
            expected,
            req.expect_absent,
            client_id=req.client_id,
            seq=req.seq,
            timestamp_ms=self._now_ms(),
        )

    # --- key/value RPCs ------------------------------------------------------------------

    async def _do_put(self, req: Any, budget: float) -> Any:
        result = await self._propose(self._put_command(req), budget)
        return kv_pb2.PutResponse(
            revision=result.revision,
            had_prev=result.prev_value is not None,
            prev_value=result.prev_value or b"",
        )

    async def _do_delete(self, req: Any, budget: float) -> Any:
        result = await self._propose(self._delete_command(req), budget)
        return kv_pb2.DeleteResponse(
            deleted=result.prev_value is not None,
            revision=result.revision,
            prev_value=result.prev_value or b"",
        )

    async def _do_cas(self, req: Any, budget: float) -> Any:
        result = await self._propose(self._cas_command(req), budget)
        return kv_pb2.CasResponse(
            succeeded=result.ok,
            revision=result.revision,
            had_prev=result.prev_value is not None,
            prev_value=result.prev_value or b"",
        )

    def _local_get(self, req: Any) -> Any:
        value, revision = self._state_machine().get(req.key)
        return kv_pb2.GetResponse(found=value is not None, value=value or b"", revision=revision)

    async def _write(
        self,
        request: Any,
        context: Any,
        response_type: Any,
        do: Callable[[Any, float], Awaitable[Any]],
    ) -> Any:
        """One replicated write RPC: cluster check, then ``do(request, budget)``."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            resp = await do(request, budget)
            self._leader_hint(resp.error)
            return resp

        return await self._answer(response_type, work, lambda r: r)

    async def Put(self, request: Any, context: Any) -> Any:
        """Replicate one put; answers the new revision and the previous value."""
        return await self._write(request, context, kv_pb2.PutResponse, self._do_put)

    async def Delete(self, request: Any, context: Any) -> Any:
        """Replicate one delete; ``deleted`` says whether the key existed."""
        return await self._write(request, context, kv_pb2.DeleteResponse, self._do_delete)

    async def Cas(self, request: Any, context: Any) -> Any:
        """Replicate one compare-and-swap; ``succeeded`` is false if the comparison failed."""
        return await self._write(request, context, kv_pb2.CasResponse, self._do_cas)

    async def Get(self, request: Any, context: Any) -> Any:
        """Read one key (linearizable unless ``serializable``)."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            self._limits.check_key(request.key)
            self._state_machine()
            await self._read_barrier(request.serializable, budget)
            return self._local_get(request)

        return await self._answer(kv_pb2.GetResponse, work, lambda r: r)

    async def ListKeys(self, request: Any, context: Any) -> Any:
        """Keys under a prefix, in key order (``limit`` 0 = all)."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            prefix = self._limits.check_prefix(request.prefix)
            sm = self._state_machine()
            await self._read_barrier(request.serializable, budget)
            return kv_pb2.ListKeysResponse(
                keys=sm.list_keys(prefix, limit=request.limit), revision=sm.revision()
            )

        return await self._answer(kv_pb2.ListKeysResponse, work, lambda r: r)

    async def Prefixes(self, request: Any, context: Any) -> Any:
        """Distinct next path segments under a prefix."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            prefix = self._limits.check_prefix(request.prefix)
            sm = self._state_machine()
            await self._read_barrier(request.serializable, budget)
            return kv_pb2.PrefixesResponse(prefixes=sm.prefixes(prefix), revision=sm.revision())

        return await self._answer(kv_pb2.PrefixesResponse, work, lambda r: r)

    # --- batch -------------------------------------------------------------------------

    async def Batch(self, request: Any, context: Any) -> Any:
        """Many puts/deletes/cas/gets in one RPC, each with its own result.

        Writes are proposed together (``node.propose_many``: one log append,
        one fsync); all linearizable gets share one read index (see
        :mod:`~nexus_raft.kv.service.batch`). A follower forwards the writes
        to the leader as one group; with forwarding off it refuses a batch
        with writes as a whole (``NOT_LEADER``) so the client re-sends it to
        the leader in one piece.
        """
        return await self._batch(request, self._budget(context))

    async def Pipeline(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """A stream of batches (``PipelineRequest``): each answered as soon as it is done.

        See :mod:`~nexus_raft.kv.service.pipeline`; every batch gets the
        service's own ``timeout`` as its budget (a stream has no deadline).
        """
        async for answer in serve_pipeline(self._batch, self._timeout, request_iterator):
            yield answer

    async def _batch(self, request: Any, budget: float) -> Any:
        """The ``BatchResponse`` to ``request`` (for Batch and Pipeline)."""
        try:
            self._check_cluster(request.cluster_id)
            ops = request.ops
            if len(ops) > self._limits.max_batch_ops:
                raise TooLarge(
                    f"batch has {len(ops)} operations; the limit is {self._limits.max_batch_ops}"
                )
            sm = self._state_machine()  # a witness refuses the whole batch
            has_write = any(op.WhichOneof("op") != "get" for op in ops)
            if has_write and not self._forward and not self._node.is_leader:
                raise NotLeader(
                    "not the leader",
                    leader_id=self._node.leader_id,
                    leader_address=self._node.leader_address,
                )
        except Exception as exc:
            log_failure(exc)
            return kv_pb2.BatchResponse(error=error_from_exception(exc))
        resp = await run_batch(
            self._node,
            sm,
            ops,
            self._limits,
            budget,
            timestamp_ms=self._now_ms(),
            forward=self._forward,
        )
        if has_write:
            self._leader_hint(resp.error)
        return resp

    # --- watch -------------------------------------------------------------------------

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Stream events under a prefix: stored history from ``start_revision``, then live.

        The first message is sent at once (possibly without events) so the
        client knows the watch is established; an error ends the stream.
        Bounded per client connection (see :mod:`~nexus_raft.kv.service.watch`;
        :meth:`register` adds the send timeout).
        """
        messages = watch_messages(self._open_watch, request, peer_of(context), self.watch_policy)
        try:
            async for message in messages:
                yield message
        finally:
            await messages.aclose()

    def _open_watch(self, request: Any) -> tuple[Any, int]:
        try:
            self._check_cluster(request.cluster_id)
            prefix = self._limits.check_prefix(request.prefix)
            sm = self._state_machine()
            return sm.watch(prefix, start_revision=request.start_revision), sm.revision()
        except Exception as exc:
            log_failure(exc)
            raise
