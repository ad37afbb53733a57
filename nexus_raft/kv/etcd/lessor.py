"""Lease expiry: kept by the leader only, as etcd does.

Grants and revokes are replicated (etcd commands, applied by the state
machine, which keeps every lease's TTL and keys). Keep-alives are not: the
leader alone holds an expiry time per lease, renews it on a keep-alive, and
proposes a revoke when it passes (at most ``revoke_rate`` per second, so a
mass expiry does not flood the log). A member that becomes leader starts
every lease's clock afresh at TTL plus an election timeout (the old
leader's renewals died with it); a member that stops leading forgets the
clocks. Time is ``time.monotonic`` (injectable), never the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from nexus_raft.errors import NexusRaftError, Unavailable
from nexus_raft.transport._generated.etcd import rpc_pb2

__all__ = ["Lessor"]

_log = logging.getLogger(__name__)


class Lessor:
    """The leader's lease clocks for one member (``start()`` on the node's event loop)."""

    def __init__(
        self,
        node: Any,
        revoke: Callable[[int], Any],
        *,
        extend: float,
        tick: float = 0.1,
        revoke_rate: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._revoke = revoke
        self._extend = extend
        self._tick = tick
        self._rate = revoke_rate
        self._clock = clock
        self._expiry: dict[int, float] = {}
        self._ttl: dict[int, int] = {}
        self._leading = False
        self._revoking: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def leading(self) -> bool:
        """Whether this member holds the lease clocks (it is the leader)."""
        return self._leading

    def start(self) -> None:
        """Begin watching leadership and expiring leases."""
        sm = self._node.state_machine
        if sm is None or self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        sm.add_lease_listener(self._changed)
        self._task = self._loop.create_task(self._run(), name="etcd-lessor")

    def _changed(self, granted: dict[int, int], revoked: list[int]) -> None:
        # Called by the state machine after an apply, possibly on another thread.
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._apply_change, granted, revoked)
        except RuntimeError:
            pass  # the loop is closed

    def _apply_change(self, granted: dict[int, int], revoked: list[int]) -> None:
        now = self._clock()
        for lease, ttl in granted.items():
            self._ttl[lease] = ttl
            if self._leading:
                self._expiry[lease] = now + ttl
        for lease in revoked:
            self._ttl.pop(lease, None)
            self._expiry.pop(lease, None)
            self._revoking.discard(lease)

    async def _run(self) -> None:
        budget = 0.0
        while True:
            await asyncio.sleep(self._tick)
            try:
                leading = bool(self._node.is_leader)
                self._node.term  # noqa: B018 - raises Unavailable once the node stopped
            except Unavailable:
                return  # the node stopped
            if leading and not self._leading:
                self._promote()
            elif not leading and self._leading:
                _log.info("lessor: no longer leader, dropping %d lease clocks", len(self._expiry))
                self._leading = False
                self._expiry.clear()
            if not self._leading:
                continue
            budget = min(float(self._rate), budget + self._rate * self._tick)
            now = self._clock()
            for lease, when in list(self._expiry.items()):
                if budget < 1:
                    break
                if when <= now and lease not in self._revoking:
                    budget -= 1
                    self._revoking.add(lease)
                    task = asyncio.ensure_future(self._expire(lease))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def _promote(self) -> None:
        sm = self._node.state_machine
        with sm.read_view() as view:
            leases = view.leases()
        now = self._clock()
        self._ttl = dict(leases)
        self._expiry = {lease: now + ttl + self._extend for lease, ttl in leases.items()}
        self._leading = True
        self._revoking.clear()
        _log.info("lessor: leader now, %d leases extended by %.1fs", len(leases), self._extend)

    async def _expire(self, lease: int) -> None:
        try:
            await self._revoke(lease)
            _log.info("lease %x expired and was revoked", lease)
        except NexusRaftError as exc:
            _log.debug("revoking expired lease %x failed: %s", lease, exc)
        except Exception as exc:  # EtcdError (lease already gone) and friends
            _log.debug("revoking expired lease %x: %s", lease, exc)
        finally:
            self._revoking.discard(lease)

    def renew(self, lease: int) -> int:
        """A keep-alive on the leader: the lease's TTL (0: no such lease)."""
        ttl = self._known_ttl(lease)
        if ttl is None:
            return 0
        self._expiry[lease] = self._clock() + ttl
        return ttl

    def _known_ttl(self, lease: int) -> int | None:
        ttl = self._ttl.get(lease)
        if ttl is None:
            with self._node.state_machine.read_view() as view:
                ttl = view.lease_ttl(lease)
            if ttl is not None:
                self._ttl[lease] = ttl
        return ttl

    def time_to_live(self, request: Any) -> Any:
        """LeaseTimeToLive on the leader (TTL -1: no such lease)."""
        sm = self._node.state_machine
        resp = rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID)
        with sm.read_view() as view:
            granted = view.lease_ttl(request.ID)
            if granted is None:
                resp.TTL = -1
                return resp
            resp.grantedTTL = granted
            if request.keys:
                resp.keys.extend(view.lease_keys(request.ID))
        when = self._expiry.get(request.ID)
        left = granted if when is None else max(0.0, when - self._clock())
        resp.TTL = math.floor(left)
        return resp

    def stop(self) -> None:
        """Stop expiring (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        sm = self._node.state_machine
        if sm is not None:
            sm.remove_lease_listener(self._changed)
