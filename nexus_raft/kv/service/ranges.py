"""``Range`` (keys with values under a prefix) and ``DeletePrefix`` (atomic) RPCs.

``Range`` reads one consistent store view (linearizable after a ReadIndex
unless ``serializable``) and pages: at most ``limit`` keys, and at most
:data:`~nexus_raft.kv.service.batch.MAX_RESPONSE_BYTES` per answer, with
``more`` set and ``start_after`` to continue. ``DeletePrefix`` is one
replicated write (an etcd DeleteRange over the prefix), so every key goes in
one revision or none does.
"""

from __future__ import annotations

from typing import Any

from nexus_raft.errors import InvalidArgument
from nexus_raft.kv.etcd.command import Code, Kind, decode_result, encode_command
from nexus_raft.kv.service.base import ServiceBase
from nexus_raft.kv.service.batch import MAX_RESPONSE_BYTES
from nexus_raft.kv.wire import kv_pb2
from nexus_raft.transport._generated.etcd import rpc_pb2

__all__ = ["RangeRPCs"]


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key above every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


class RangeRPCs(ServiceBase):
    """``Range`` and ``DeletePrefix`` (mixed into ``KVService``)."""

    async def Range(self, request: Any, context: Any) -> Any:
        """Keys (and values) under a prefix in key order; see the module docstring."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            prefix = self._limits.check_prefix(request.prefix)
            sm = self._state_machine()
            if not request.serializable:
                await self._node.read_index(timeout=budget)
            start = bytes(request.start_after) + b"\x00" if request.start_after else prefix
            if start < prefix:
                start = prefix
            resp = kv_pb2.RangeResponse()
            size = 0
            with sm.read_view() as view:
                resp.revision = view.revision
                for key, record in view.items(start, prefix_upper_bound(prefix)):
                    if (request.limit and len(resp.kvs) >= request.limit) or (
                        resp.kvs and size >= MAX_RESPONSE_BYTES
                    ):
                        resp.more = True
                        break
                    kv = resp.kvs.add()
                    kv.key = key
                    kv.revision = record.mod
                    if not request.keys_only:
                        kv.value = record.value
                    size += len(key) + (0 if request.keys_only else len(record.value)) + 16
            return resp

        return await self._answer(kv_pb2.RangeResponse, work, lambda r: r)

    async def DeletePrefix(self, request: Any, context: Any) -> Any:
        """Delete every key under the prefix in one write; answers how many."""
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            prefix = self._limits.check_prefix(request.prefix)
            if not prefix:
                raise InvalidArgument("refusing to delete every key: give a non-empty prefix")
            self._state_machine()
            end = prefix_upper_bound(prefix) or b"\x00"  # etcd: "\\0" means to the end
            command = encode_command(
                Kind.DELETE_RANGE, rpc_pb2.DeleteRangeRequest(key=prefix, range_end=end)
            )
            raw = await self._node.propose(command, timeout=budget, forward=self._forward)
            code, revision, payload = decode_result(raw)
            if code is not Code.OK:
                raise InvalidArgument(f"delete of prefix refused ({code.name.lower()})")
            answer = rpc_pb2.DeleteRangeResponse.FromString(payload)
            return kv_pb2.DeletePrefixResponse(deleted=answer.deleted, revision=revision)

        return await self._answer(kv_pb2.DeletePrefixResponse, work, lambda r: r)
