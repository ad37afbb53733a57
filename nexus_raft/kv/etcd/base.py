"""What every etcd servicer shares: the node, response headers, proposing, error answers.

Headers: ``cluster_id`` is the first 8 bytes of the SHA-256 of nexus's
cluster id (etcd's ids are u64), ``member_id`` is the member's nexus id (the
ids ``MemberList`` and ``Status.leader`` use), ``revision`` the store's main
revision, ``raft_term`` the member's current term. etcdctl and the client
libraries need all four on every response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from nexus_raft.errors import NotLeader, Timeout, Unavailable
from nexus_raft.kv.etcd.command import RESPONSE_TYPES, Code, Kind, decode_result, encode_command
from nexus_raft.kv.etcd.errors import EtcdError, etcd_error, from_code

__all__ = ["EtcdBase", "ReadRounds", "cluster_id_u64"]

_log = logging.getLogger("nexus_raft.kv.etcd")
_R = TypeVar("_R")
_MARGIN = 0.05


def cluster_id_u64(cluster_id: str) -> int:
    """etcd's u64 form of a nexus cluster id (stable: every member derives the same)."""
    return int.from_bytes(hashlib.sha256(cluster_id.encode("utf-8")).digest()[:8], "big")


def _node_cluster_id(node: Any) -> str:
    value = getattr(node, "cluster_id", None)
    if value is None:
        value = getattr(getattr(node, "config", None), "effective_cluster_id", "")
    return value if isinstance(value, str) else ""


class ReadRounds:
    """Linearizable reads share read-index rounds, as etcd's read loop does.

    A read joins the next round, one that starts after the read arrived
    (a round already under way may have started before it, so its answer
    could miss a write the read must see); while a round runs, every read
    that arrives waits for the one after it. One ReadIndex round (a
    heartbeat to a quorum) then serves any number of concurrent reads.
    """

    def __init__(self, node: Any, timeout: float) -> None:
        self._node = node
        self._timeout = timeout
        self._next: asyncio.Future[int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def wait(self, budget: float) -> int:
        """The read index of a round started after this call (Timeout-like errors pass through)."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieve)
        fut = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), budget)
        except asyncio.TimeoutError:
            raise Timeout(f"no linearizable read point within {budget:.2f}s") from None

    async def _run(self) -> None:
        while self._next is not None:
            fut, self._next = self._next, None
            try:
                fut.set_result(await self._node.read_index(timeout=self._timeout))
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:
                fut.set_exception(exc)


class WriteGroups:
    """Concurrent etcd writes are proposed together, one group per event loop turn.

    Every write that arrives before the loop gets around to the group joins
    it; the group goes to ``propose_many`` (one driver step, one log append,
    one wait), which costs far less per write than one ``propose`` each.
    Each write still gets its own result or error, and its own deadline.

    A write refused with NotLeader was not appended anywhere (a member that
    lost leadership refuses before appending), so it is proposed again,
    through the new leader, while time is left: etcd clients do not re-send
    writes, and an election under load would otherwise fail them. Nothing
    else is retried (a dropped proposal's outcome may be unknown).
    """

    def __init__(self, node: Any, timeout: float) -> None:
        self._node = node
        self._timeout = timeout
        self._group: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def propose(self, command: bytes, budget: float) -> bytes:
        """``command``'s result (forwarded to the leader from a follower)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        fut.add_done_callback(_retrieve)
        if not self._group:
            loop.call_soon(self._flush)
        self._group.append((command, fut))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), budget)
        except asyncio.TimeoutError:
            raise Timeout(f"the write was not applied within {budget:.2f}s") from None

    def _flush(self) -> None:
        group, self._group = self._group, []
        task = asyncio.ensure_future(self._send(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, group: list[tuple[bytes, asyncio.Future[bytes]]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while group:
            try:
                outcomes: list[Any] = list(await self._node.propose_many(
                    [c for c, _ in group], timeout=max(0.01, deadline - loop.time()),
                    forward=True,
                ))
            except NotLeader as exc:
                outcomes = [exc] * len(group)
            except Exception as exc:
                outcomes = [exc] * len(group)
            again = []
            for (command, fut), outcome in zip(group, outcomes, strict=True):
                if fut.done():
                    continue
                if isinstance(outcome, NotLeader) and loop.time() < deadline - 0.1:
                    again.append((command, fut))
                elif isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)
            group = again
            if group:
                # Give the election a moment; the forwarder waits for a leader too.
                await asyncio.sleep(0.05)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    # Every waiter may have given up: mark the exception as seen.
    if not fut.cancelled():
        fut.exception()


class EtcdBase:
    """State shared by the etcd servicers of one node (see the module docstring)."""

    def __init__(self, node: Any, *, timeout: float = 5.0) -> None:
        self._node = node
        self._timeout = timeout
        self.cluster_id = cluster_id_u64(_node_cluster_id(node))
        self.member_id = int(node.id)
        self._reads = ReadRounds(node, timeout)
        self._writes = WriteGroups(node, timeout)

    # --- plumbing -----------------------------------------------------------------------

    @property
    def node(self) -> Any:
        """The member this API serves."""
        return self._node

    def state_machine(self) -> Any:
        """The KV state machine (a witness has none: it cannot answer data requests)."""
        sm = self._node.state_machine
        if sm is None:
            raise EtcdError("witness")
        return sm

    def term(self) -> int:
        """The member's current Raft term (0 when it is not running)."""
        try:
            # Not status(): that one measures the data directory on disk and
            # would cost every response a directory walk.
            return int(self._node.term)
        except Unavailable:
            return 0

    def header(self, header: Any, revision: int | None = None) -> None:
        """Fill a ResponseHeader (``revision`` None: the store's current one)."""
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        if revision is None:
            sm = self._node.state_machine
            revision = sm.revision() if sm is not None else 0
        header.revision = revision
        header.raft_term = self.term()

    def budget(self, context: Any) -> float:
        """Seconds this request may wait on Raft (the caller's deadline, capped)."""
        remaining = context.time_remaining() if context is not None else None
        if remaining is None:
            return self._timeout
        return max(0.01, min(self._timeout, float(remaining) - _MARGIN))

    async def fail(self, context: Any, exc: BaseException) -> None:
        """Abort the RPC with etcd's status for ``exc`` (never returns)."""
        code, message = etcd_error(exc)
        _log.debug("etcd request refused: %s (%s)", message, exc)
        await context.abort(code, message)

    async def answer(self, context: Any, work: Callable[[], Awaitable[_R]]) -> _R:
        """Run ``work``; any failure aborts the RPC with etcd's error."""
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await self.fail(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    async def propose(
        self, kind: Kind, request: Any, context: Any, *, forward: bool = True
    ) -> Any:
        """Replicate an etcd write; its response (header filled) or an EtcdError.

        ``forward``: on a follower, hand the write to the leader (etcd clients
        never re-send a write to another member once connected); without it
        a follower answers ``not leader``.
        """
        budget = self.budget(context)
        self.state_machine()
        try:
            command = encode_command(kind, request)
            if forward:
                raw = await self._writes.propose(command, budget)
            else:
                raw = await self._node.propose(command, timeout=budget, forward=False)
        except NotLeader as exc:
            if exc.leader_id is None:
                raise EtcdError("no_leader") from exc
            raise
        code, revision, payload = decode_result(raw)
        if code is not Code.OK:
            raise from_code(code, payload)
        response = RESPONSE_TYPES[kind].FromString(payload)
        self.header(response.header, revision)
        return response

    async def read_barrier(self, serializable: bool, context: Any) -> None:
        """Wait for a linearizable read point unless ``serializable`` (see :class:`ReadRounds`)."""
        if not serializable:
            await self._reads.wait(self.budget(context))
