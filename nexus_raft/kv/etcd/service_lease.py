"""``etcdserverpb.Lease``: grant, revoke, keep-alive, time-to-live, list.

Grant and revoke are replicated commands. Keep-alive and time-to-live need
the leader's lease clocks (:mod:`~nexus_raft.kv.etcd.lessor`): on a
follower they are forwarded to the leader's etcd API and its answers relayed
(with this member's header), as etcd followers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import grpc

from nexus_raft.kv.etcd.base import EtcdBase
from nexus_raft.kv.etcd.command import Kind
from nexus_raft.kv.etcd.errors import EtcdError
from nexus_raft.kv.etcd.lessor import Lessor
from nexus_raft.transport._generated.etcd import rpc_pb2, rpc_pb2_grpc

__all__ = ["LeaseServicer"]

_MAX_TTL = 9_000_000_000


class LeaseServicer(EtcdBase, rpc_pb2_grpc.LeaseServicer):  # type: ignore[misc]
    """The etcd Lease service of one member; ``min_ttl``: shortest TTL granted (seconds)."""

    def __init__(self, node: Any, *, timeout: float = 5.0, min_ttl: int = 1,
                 election_timeout: float = 1.0, rng: random.Random | None = None) -> None:
        super().__init__(node, timeout=timeout)
        self.min_ttl = min_ttl
        self._rng = rng or random.SystemRandom()
        self.lessor = Lessor(node, self._revoke_expired, extend=election_timeout)
        self._channel: grpc.aio.Channel | None = None
        self._channel_target = ""
        self._closing: asyncio.Future[None] | None = None

    async def _revoke_expired(self, lease: int) -> None:
        # Never forwarded: a member that lost leadership meanwhile must not
        # revoke a lease whose clock the new leader restarted.
        req = rpc_pb2.LeaseRevokeRequest(ID=lease)
        await self.propose(Kind.LEASE_REVOKE, req, None, forward=False)

    # --- forwarding to the leader --------------------------------------------------------

    def _leader_stub(self) -> Any:
        address = self.node.leader_address
        if not address or self.node.leader_id is None:
            raise EtcdError("no_leader")
        if self._channel is None or self._channel_target != address:
            if self._channel is not None:
                self._closing = asyncio.ensure_future(self._channel.close())
            self._channel = grpc.aio.insecure_channel(address)
            self._channel_target = address
        return rpc_pb2_grpc.LeaseStub(self._channel)

    # --- RPCs ---------------------------------------------------------------------------

    async def LeaseGrant(self, request: Any, context: Any) -> Any:
        """A new lease (ID chosen here when 0; TTL at least ``min_ttl``)."""

        async def work() -> Any:
            if request.TTL > _MAX_TTL:
                raise EtcdError("lease_ttl_too_large")
            req = rpc_pb2.LeaseGrantRequest(
                TTL=max(request.TTL, self.min_ttl),
                ID=request.ID or (self._rng.getrandbits(63) or 1),
            )
            return await self.propose(Kind.LEASE_GRANT, req, context)

        return await self.answer(context, work)

    async def LeaseRevoke(self, request: Any, context: Any) -> Any:
        """Revoke a lease and delete its keys (one revision)."""

        async def work() -> Any:
            return await self.propose(Kind.LEASE_REVOKE, request, context)

        return await self.answer(context, work)

    async def LeaseTimeToLive(self, request: Any, context: Any) -> Any:
        """Remaining and granted TTL (and keys) of a lease; TTL -1 when it does not exist."""

        async def work() -> Any:
            self.state_machine()
            if self.lessor.leading:
                resp = self.lessor.time_to_live(request)
            else:
                resp = await self._leader_stub().LeaseTimeToLive(
                    request, timeout=self.budget(context)
                )
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def LeaseLeases(self, request: Any, context: Any) -> Any:
        """Every lease, from this member's replicated state."""

        async def work() -> Any:
            with self.state_machine().read_view() as view:
                leases = view.leases()
            resp = rpc_pb2.LeaseLeasesResponse(
                leases=[rpc_pb2.LeaseStatus(ID=lease) for lease in sorted(leases)]
            )
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def LeaseKeepAlive(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """Renew leases on the leader; a follower relays each request to it."""
        upstream: Any = None
        try:
            async for req in request_iterator:
                try:
                    self.state_machine()
                    if self.lessor.leading:
                        ttl = self.lessor.renew(req.ID)
                        resp = rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, TTL=ttl)
                    else:
                        if upstream is None:
                            upstream = self._leader_stub().LeaseKeepAlive()
                        await upstream.write(req)
                        got = await upstream.read()
                        if got is grpc.aio.EOF:
                            raise EtcdError("leader_changed")
                        resp = rpc_pb2.LeaseKeepAliveResponse(ID=got.ID, TTL=got.TTL)
                except (EtcdError, grpc.aio.AioRpcError) as exc:
                    if upstream is not None:
                        upstream.cancel()
                        upstream = None
                    if isinstance(exc, grpc.aio.AioRpcError):
                        exc = EtcdError("leader_changed")
                    await self.fail(context, exc)
                    return
                self.header(resp.header)
                yield resp
        finally:
            if upstream is not None:
                upstream.cancel()

    async def close(self) -> None:
        """Stop the lessor and the forwarding channel."""
        self.lessor.stop()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()


def min_lease_ttl(election_timeout: float) -> int:
    """etcd's minimum TTL: 1.5 election timeouts, in whole seconds (at least 1)."""
    return max(1, math.ceil(1.5 * election_timeout))
