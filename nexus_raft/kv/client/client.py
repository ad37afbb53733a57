"""Client: the asyncio client of the replicated KV service.

::

    async with Client(["127.0.0.1:7001", "127.0.0.1:7002"]) as c:
        await c.put("users/alice", b"...")
        value = await c.get("users/alice")          # linearizable by default

Give it any subset of the members; it finds the leader and follows it across
elections (see :mod:`.router`). Every call has a deadline (``timeout``,
default 5 s); when it passes the call raises ``NotLeader`` (no leader was
reachable), ``Unavailable`` (members unreachable or refusing) or ``Timeout``
(members did not answer in time), each naming the last failure.

Exactly-once writes: each write is sent with a session (``client_id``, a
random 63-bit number, and ``seq``), and every retry re-sends the same pair,
so a write whose answer was lost is applied once. A session carries one write
at a time: concurrent writes use different sessions from a small pool, and a
session whose last write ended without a known outcome (deadline, cancel) is
thrown away rather than reused, so a late copy of that write can never be
mistaken for a newer one.

Throughput: concurrent puts, deletes, cas and linearizable gets are coalesced
into ``Batch`` RPCs (see :mod:`.batcher`); 256 concurrent callers cost
a handful of RPCs, not 256.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from nexus_raft.consensus.node.backup import BackupMeta
from nexus_raft.errors import ClusterMismatch, InvalidArgument, NexusRaftError
from nexus_raft.kv.client.backup import save_backup
from nexus_raft.kv.client.batcher import Batcher
from nexus_raft.kv.client.router import Router
from nexus_raft.kv.client.status import leader_status, pin_cluster
from nexus_raft.kv.client.types import MemberInfo, NodeInfo, WatchEvent
from nexus_raft.kv.client.watch import WatchStream
from nexus_raft.kv.limits import as_key, as_value
from nexus_raft.kv.wire import kv_pb2

__all__ = ["Client", "MemberInfo", "NodeInfo", "WatchEvent", "WatchStream"]

_log = logging.getLogger(__name__)


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return float(value)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(slots=True)
class _Session:
    client_id: int
    seq: int


class _SessionPool:
    """Sessions not carrying a write right now (see the module docstring)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._free: list[_Session] = []

    def take(self) -> _Session:
        if self._free:
            return self._free.pop()
        # 63 bits so the id is a positive int64 everywhere; 0 means "no session".
        return _Session(self._rng.getrandbits(63) or 1, 1)

    def release(self, session: _Session, *, outcome_known: bool) -> None:
        if outcome_known:
            session.seq += 1
            self._free.append(session)


class Client:
    """Asyncio client for ``nexus-node`` clusters (use ``async with`` or ``close()``).

    ``endpoints``: member addresses (``host:port``, ``http://``/``https://``
    prefixes accepted), a list or a comma-separated string. ``timeout``: the
    default deadline of each call in seconds. ``cluster_id``: if given, members
    of another cluster refuse the requests. ``attempt_timeout``: deadline of
    one RPC attempt to one member. ``max_batch``/``max_inflight_batches``: the
    coalescing knobs (``max_batch=1`` sends one RPC per operation). ``tls``:
    a ``nexus_raft.transport.TLSConfig`` for ``https`` members.

    A Client belongs to the event loop it is first used on (its gRPC channels
    are bound to it); use :class:`SyncClient` from threads without a loop.

    ``auto_sync`` (default on): on first use the client asks the cluster for
    its membership in the background, and every ``status()`` answer teaches it
    the members' addresses, so a list with one live member is enough.

    ``rng`` (session ids, backoff jitter; default a fresh ``random.Random()``)
    and ``stub_factory`` (see :class:`~nexus_raft.kv.client.router.Router`)
    are seams for the whole-node simulator; production leaves them unset.
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str,
        *,
        timeout: float = 5.0,
        cluster_id: str | None = None,
        attempt_timeout: float = 1.0,
        max_batch: int = 256,
        max_inflight_batches: int = 4,
        tls: Any = None,
        rng: random.Random | None = None,
        stub_factory: Callable[[str], Any] | None = None,
        auto_sync: bool | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in (p.strip() for p in endpoints.split(",")) if e]
        elif not isinstance(endpoints, Sequence) or not all(isinstance(e, str) for e in endpoints):
            raise TypeError("endpoints must be a str or a sequence of str")
        if not endpoints:
            raise ValueError("endpoints must name at least one member")
        if cluster_id is not None and not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be str or None, not {type(cluster_id).__name__}")
        self._timeout = _check_seconds("timeout", timeout)
        attempt = _check_seconds("attempt_timeout", attempt_timeout)
        configured = cluster_id or ""
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        if stub_factory is not None and not callable(stub_factory):
            raise TypeError("stub_factory must be callable")
        self._router = Router(
            endpoints, attempt_timeout=attempt, tls=tls, rng=rng, stub_factory=stub_factory
        )
        # The router holds the cluster id every request carries: the one
        # configured, else the one the first status answer names (see
        # ``cluster_id``), so one client never mixes two clusters.
        self._router.cluster_id = configured
        self._batcher = Batcher(
            self._router,
            max_batch=_check_count("max_batch", max_batch, 1),
            max_inflight=_check_count("max_inflight_batches", max_inflight_batches, 1),
        )
        self._sessions = _SessionPool(self._router.rng)
        self._watches: weakref.WeakSet[WatchStream] = weakref.WeakSet()
        self._closed = False
        # Endpoint auto-sync (default on; off under a simulator's stub factory).
        self._auto_sync = stub_factory is None if auto_sync is None else bool(auto_sync)
        # Without a configured cluster id, learn it before the first request
        # (same rule as auto-sync: a simulator's members are one cluster).
        self._router.learn_cluster = not configured and self._auto_sync
        self._sync_task: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _start_sync(self) -> None:
        """Endpoint auto-sync: learn every member's address from the membership
        in the background (once, on first use), so one live endpoint is enough."""
        if self._sync_task is not None or not self._auto_sync:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop yet: the first call made on one starts it
        self._sync_task = loop.create_task(self._sync_members())

    async def _sync_members(self) -> None:
        # Retried until it works (a watch may make no other call that would
        # teach the client the members); cancelled by close().
        delay = 0.2
        while not self._closed:
            try:
                info = await self.status(timeout=self._timeout)  # status() learns the addresses
            except NexusRaftError as exc:
                _log.debug("endpoint auto-sync will be retried: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            _log.info(
                "endpoint auto-sync: learned %d members (%s)",
                len(info.members), ", ".join(self._router.endpoints),
            )  # fmt: skip
            return

    async def close(self) -> None:
        """Fail pending operations, end watches and close channels (idempotent)."""
        if self._closed:
            return
        self._closed = True
        task, self._sync_task = self._sync_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in list(self._watches):
            await stream.close()
        await self._batcher.close()
        await self._router.close()

    @property
    def cluster_id(self) -> str | None:
        """The cluster this client talks to: the ``cluster_id`` given, else the one
        of the first member it reached (its first call asks that member's
        status before sending anything); None until known.

        Once known, every request carries it, so a member of another cluster
        among the endpoints refuses (``ClusterMismatch``) instead of serving:
        a client never reads from one cluster and writes to another.
        """
        return self._router.cluster_id or None

    @property
    def _cluster_id(self) -> str:
        return self._router.cluster_id

    @property
    def leader(self) -> str | None:
        """The address the client currently believes leads (None while unknown)."""
        return self._router.leader

    @property
    def endpoints(self) -> list[str]:
        """Member addresses known to the client (given and learned)."""
        return self._router.endpoints

    @property
    def batches_sent(self) -> int:
        """Batch RPC attempts so far (shows how well concurrent calls coalesce)."""
        return self._batcher.batches_sent

    def _deadline(self, timeout: float | None) -> float:
        if self._closed:
            raise NexusRaftError("the client is closed")
        self._start_sync()
        seconds = self._timeout if timeout is None else _check_seconds("timeout", timeout)
        return asyncio.get_running_loop().time() + seconds

    # --- writes ---------------------------------------------------------------------

    async def _write(self, kind: str, fields: dict[str, Any], deadline: float) -> Any:
        session = self._sessions.take()
        known = False
        try:
            # Filled in place: constructing the request with keyword arguments
            # and then copying it into a BatchOp costs ~3x more per write.
            op = kv_pb2.BatchOp()
            message = getattr(op, kind)
            message.client_id = session.client_id
            message.seq = session.seq
            for name, value in fields.items():
                setattr(message, name, value)
            result = await self._batcher.submit(op, deadline)
            known = True
            return getattr(result, kind)
        except (InvalidArgument, ClusterMismatch):
            known = True  # refused before it was proposed: the session is still clean
            raise
        finally:
            self._sessions.release(session, outcome_known=known)

    async def put(self, key: bytes | str, value: bytes, *, timeout: float | None = None) -> int:
        """Set ``key`` to ``value``; returns the revision of the write."""
        k, v = as_key(key), as_value(value)
        resp = await self._write("put", {"key": k, "value": v}, self._deadline(timeout))
        return int(resp.revision)

    async def delete(self, key: bytes | str, *, timeout: float | None = None) -> bool:
        """Delete ``key``; returns whether it existed."""
        k = as_key(key)
        resp = await self._write("delete", {"key": k}, self._deadline(timeout))
        return bool(resp.deleted)

    async def cas(
        self,
        key: bytes | str,
        expected: bytes | None,
        new: bytes | None,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Compare-and-swap: set ``key`` to ``new`` if its value is ``expected``.

        ``expected`` None means "the key must be absent"; ``new`` None deletes
        the key. Returns whether the swap happened.
        """
        k = as_key(key)
        fields: dict[str, Any] = {"key": k}
        if expected is None:
            fields["expect_absent"] = True
        else:
            fields["expected"] = as_value(expected, name="expected")
        if new is None:
            fields["delete"] = True
        else:
            fields["new_value"] = as_value(new, name="new")
        resp = await self._write("cas", fields, self._deadline(timeout))
        return bool(resp.succeeded)

    # --- reads ----------------------------------------------------------------------

    async def get(
        self, key: bytes | str, *, serializable: bool = False, timeout: float | None = None
    ) -> bytes | None:
        """The value of ``key`` or None (linearizable unless ``serializable``)."""
        value, _ = await self.get_with_revision(key, serializable=serializable, timeout=timeout)
        return value

    async def get_with_revision(
        self,
        key: bytes | str,
        *,
        serializable: bool = False,
        timeout: float | None = None,
        endpoint: str | None = None,
        fail_fast: bool = False,
    ) -> tuple[bytes | None, int]:
        """``(value or None, revision)`` of ``key``; ``endpoint``: read through that member.

        ``fail_fast`` (with ``endpoint``): raise after one attempt when the
        member cannot be reached (a probe), instead of retrying until the deadline.
        """
        k = as_key(key)
        deadline = self._deadline(timeout)
        if serializable or endpoint is not None:
            req = kv_pb2.GetRequest(cluster_id=self._cluster_id, key=k, serializable=serializable)
            resp, _ = await self._router.call(
                "Get", req, deadline=deadline, endpoint=endpoint, fail_fast=fail_fast
            )
        else:
            op = kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=k))
            resp = (await self._batcher.submit(op, deadline)).get
        return (resp.value if resp.found else None), int(resp.revision)

    async def list_keys(
        self,
        prefix: bytes | str = b"",
        *,
        limit: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> list[bytes]:
        """Keys starting with ``prefix``, in key order (``limit`` 0 = all)."""
        req = kv_pb2.ListKeysRequest(
            cluster_id=self._cluster_id,
            prefix=as_key(prefix, name="prefix"),
            limit=_check_count("limit", limit, 0),
            serializable=serializable,
        )
        resp, _ = await self._router.call("ListKeys", req, deadline=self._deadline(timeout))
        return [bytes(k) for k in resp.keys]

    async def range(
        self,
        prefix: bytes | str,
        *,
        limit: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> list[tuple[bytes, bytes | None, int]]:
        """``(key, value, revision)`` under ``prefix`` in key order (``limit`` 0 = all).

        Pages through the member's answers (each at most a few MiB); every page
        is linearizable unless ``serializable``. ``keys_only``: values are None.
        """
        want = _check_count("limit", limit, 0)
        deadline = self._deadline(timeout)
        out: list[tuple[bytes, bytes | None, int]] = []
        after = b""
        while True:
            req = kv_pb2.RangeRequest(
                cluster_id=self._cluster_id,
                prefix=as_key(prefix, name="prefix"),
                limit=want - len(out) if want else 0,
                keys_only=keys_only,
                serializable=serializable,
                start_after=after,
            )
            resp, _ = await self._router.call("Range", req, deadline=deadline)
            for kv in resp.kvs:
                value = None if keys_only else bytes(kv.value)
                out.append((bytes(kv.key), value, int(kv.revision)))
            if not resp.more or not resp.kvs or (want and len(out) >= want):
                return out
            after = out[-1][0]

    async def delete_prefix(self, prefix: bytes | str, *, timeout: float | None = None) -> int:
        """Delete every key under ``prefix`` atomically (one revision); how many were deleted."""
        req = kv_pb2.DeletePrefixRequest(
            cluster_id=self._cluster_id, prefix=as_key(prefix, name="prefix")
        )
        resp, _ = await self._router.call(
            "DeletePrefix", req, deadline=self._deadline(timeout), learn_leader=True
        )
        return int(resp.deleted)

    async def get_prefixes(
        self,
        prefix: bytes | str = b"",
        *,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> list[bytes]:
        """Distinct next path segments under ``prefix`` (``users/`` -> ``users/alice/`` ...)."""
        req = kv_pb2.PrefixesRequest(
            cluster_id=self._cluster_id,
            prefix=as_key(prefix, name="prefix"),
            serializable=serializable,
        )
        resp, _ = await self._router.call("Prefixes", req, deadline=self._deadline(timeout))
        return [bytes(p) for p in resp.prefixes]

    def watch(self, prefix: bytes | str = b"", *, start_revision: int = 0) -> WatchStream:
        """Events under ``prefix``: history from ``start_revision`` (0: live only), then live.

        The stream reconnects to another member if its member fails and
        resumes after the last delivered revision. ``Compacted`` if
        ``start_revision`` is older than the retained history.
        """
        if self._closed:
            raise NexusRaftError("the client is closed")
        # A watch given one member must survive that member: it needs the
        # others' addresses too.
        self._start_sync()
        stream = WatchStream(
            self._router,
            cluster_id=self._cluster_id,
            prefix=as_key(prefix, name="prefix"),
            start_revision=_check_count("start_revision", start_revision, 0),
            timeout=self._timeout,
        )
        self._watches.add(stream)
        return stream

    # --- cluster --------------------------------------------------------------------

    async def status(
        self, *, endpoint: str | None = None, timeout: float | None = None,
        fail_fast: bool = False,
    ) -> NodeInfo:
        """A member's status: ``endpoint``'s own view, or the cluster's.

        With ``endpoint`` and ``fail_fast``: a member that cannot be reached
        (refused, silent for the attempt timeout) raises after one attempt
        instead of being retried until the deadline (how ``nexusctl`` probes
        each member).

        Without ``endpoint``: the view of the member that is confirmed to
        lead right now, found by asking every known member at once (see
        :mod:`~nexus_raft.kv.client.status`); a dead or silent member is
        skipped after one attempt, and a leader that did not confirm it
        leads is never reported (``leader_id`` None then).
        """
        deadline = self._deadline(timeout)
        if endpoint is None:
            info = await leader_status(
                self._router, self._cluster_id, deadline, self._router.attempt_timeout
            )
        else:
            req = kv_pb2.StatusRequest(cluster_id=self._cluster_id)
            resp, target = await self._router.call(
                "Status", req, deadline=deadline, endpoint=endpoint, fail_fast=fail_fast
            )
            info = NodeInfo.from_pb(target, resp)
            pin_cluster(self._router, info)
        for member in info.members:  # endpoint auto-sync
            if member.address:
                with contextlib.suppress(ValueError):
                    self._router.learn(member.address)
        return info

    async def members(self, *, timeout: float | None = None) -> list[MemberInfo]:
        """The cluster's members with their kinds and roles (the leader's view if reachable)."""
        return list((await self.status(timeout=timeout)).members)

    async def add_member(
        self,
        node_id: int,
        address: str,
        *,
        role: str = "voter",
        timeout: float | None = None,
    ) -> None:
        """Add a member (``role``: voter, learner or witness); ``voter`` also promotes a learner."""
        req = kv_pb2.AddMemberRequest(
            cluster_id=self._cluster_id,
            id=_check_count("node_id", node_id, 1),
            address=_check_str("address", address),
            role=_check_str("role", role),
        )
        await self._router.call(
            "AddMember", req, deadline=self._deadline(timeout), learn_leader=True
        )

    async def remove_member(self, node_id: int, *, timeout: float | None = None) -> None:
        """Remove a member from the configuration."""
        req = kv_pb2.RemoveMemberRequest(
            cluster_id=self._cluster_id, id=_check_count("node_id", node_id, 1)
        )
        await self._router.call(
            "RemoveMember", req, deadline=self._deadline(timeout), learn_leader=True
        )

    async def transfer_leader(self, node_id: int, *, timeout: float | None = None) -> None:
        """Ask the leader to hand leadership to ``node_id``."""
        req = kv_pb2.TransferLeaderRequest(
            cluster_id=self._cluster_id, id=_check_count("node_id", node_id, 1)
        )
        await self._router.call(
            "TransferLeader", req, deadline=self._deadline(timeout), learn_leader=True
        )
        # The old leader is no longer the best guess.
        self._router.note_leader(None)

    async def backup(
        self,
        out: BinaryIO,
        *,
        endpoint: str | None = None,
        timeout: float = 600.0,
        progress: Callable[[int], None] | None = None,
    ) -> BackupMeta:
        """Write a consistent backup of ``endpoint`` (default: the leader) into ``out``.

        The file is checked while it streams (header, lengths, sha256
        trailer); returns its metadata (index, term, cluster, members).
        ``progress(bytes_so_far)`` is called after every piece.
        """
        if endpoint is None:
            info = await self.status()
            endpoint = info.leader_address or info.endpoint
        return await save_backup(
            self._router, endpoint, out, cluster_id=self._cluster_id, timeout=timeout,
            progress=progress,
        )

    async def snapshot(self, *, endpoint: str | None = None, timeout: float | None = None) -> int:
        """Take a snapshot now on ``endpoint`` (default: the leader); returns its index."""
        req = kv_pb2.SnapshotRequest(cluster_id=self._cluster_id, leader=endpoint is None)
        resp, _ = await self._router.call(
            "Snapshot",
            req,
            deadline=self._deadline(timeout),
            endpoint=endpoint,
            learn_leader=endpoint is None,
        )
        return int(resp.index)


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value
