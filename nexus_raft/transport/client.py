"""RaftClient: typed asyncio calls to one peer over one gRPC channel."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NoReturn

import grpc

from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport._generated import raft_pb2_grpc as pb_grpc
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.errors import ClientClosed, DeadlineExceeded, from_rpc_error
from nexus_raft.transport.options import (
    DEFAULT_CLUSTER_ID,
    MAX_MESSAGE_BYTES,
    Timeouts,
    channel_options,
    check_timeout,
)
from nexus_raft.transport.snapshot import SnapshotData, SourceError, check_data, encode_stream
from nexus_raft.transport.stream import HeartbeatStream
from nexus_raft.transport.tls import TLSConfig

__all__ = ["RaftClient"]

_log = logging.getLogger(__name__)


def _check_uint(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_cluster_id(cluster_id: object) -> str:
    if not isinstance(cluster_id, str):
        raise TypeError(f"cluster_id must be str, not {type(cluster_id).__name__}")
    return cluster_id


class RaftClient:
    """Calls to one peer (``address``), all on one shared gRPC channel.

    Every request is stamped with this client's ``cluster_id`` and, when its
    ``to`` field is 0, with the peer's node id (request messages passed in are
    modified in place). Each call has a deadline (``timeouts``, overridable
    per call with ``timeout=``); calls never wait for a connection to become
    ready, so an unreachable peer fails fast with :class:`PeerUnavailable` or,
    at the latest, with :class:`DeadlineExceeded` at the deadline. gRPC
    errors never escape: they are mapped by
    :func:`nexus_raft.transport.errors.from_rpc_error`.

    ``tls`` is used for ``https://`` addresses (system roots when ``None``);
    plaintext addresses ignore it.
    """

    def __init__(
        self,
        address: NodeAddress,
        *,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        tls: TLSConfig | None = None,
        timeouts: Timeouts | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        extra_channel_options: Sequence[tuple[str, int | str]] = (),
        max_inflight: int = 64,
    ) -> None:
        if not isinstance(address, NodeAddress):
            raise TypeError(f"address must be NodeAddress, not {type(address).__name__}")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be TLSConfig or None, not {type(tls).__name__}")
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise TypeError(f"timeouts must be Timeouts or None, not {type(timeouts).__name__}")
        _check_uint("max_message_bytes", max_message_bytes)
        if _check_uint("max_inflight", max_inflight) < 1:
            raise ValueError("max_inflight must be >= 1")
        self._max_inflight = max_inflight
        self._slots = asyncio.Semaphore(max_inflight)
        self._address = address
        self._cluster_id = _check_cluster_id(cluster_id)
        self._timeouts = timeouts or Timeouts()
        self._peer = address.target
        options = channel_options(max_message_bytes) + list(extra_channel_options)
        if address.tls:
            creds = (tls or TLSConfig()).channel_credentials()
            self._channel = grpc.aio.secure_channel(address.target, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(address.target, options=options)
        self._stub = pb_grpc.RaftPeerStub(self._channel)
        self._streams: weakref.WeakSet[HeartbeatStream] = weakref.WeakSet()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------

    @property
    def address(self) -> NodeAddress:
        """The peer this client talks to."""
        return self._address

    @property
    def cluster_id(self) -> str:
        """The cluster id stamped on every request."""
        return self._cluster_id

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    async def close(self) -> None:
        """Close open streams and the channel; in-flight calls fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            await stream.aclose()
        await self._channel.close()

    async def __aenter__(self) -> RaftClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- helpers ---------------------------------------------------------------

    def _check_open(self, method: str) -> None:
        if self._closed:
            raise ClientClosed(f"client for {self._peer} is closed", peer=self._peer, method=method)

    def _timeout(self, override: float | None, default: float | None) -> float | None:
        if override is None:
            return default
        check_timeout(override)
        return override

    def _raise(self, exc: grpc.RpcError, method: str) -> NoReturn:
        if self._closed:
            raise ClientClosed(
                f"client for {self._peer} was closed during {method}",
                peer=self._peer,
                method=method,
            ) from None
        raise from_rpc_error(exc, peer=self._peer, method=method) from None

    def _stamp(self, request: Any) -> None:
        request.cluster_id = self._cluster_id
        if request.to == 0:
            request.to = self._address.node_id

    # -- unary RPCs --------------------------------------------------------------

    async def _unary(self, method: str, fn: Any, request: Any, timeout: float | None) -> Any:
        """One unary call, within this client's in-flight bound.

        At most ``max_inflight`` unary calls are on the channel at once; more
        wait here (in order) for a slot, for at most their own ``timeout``.
        Without the bound, thousands of simultaneous calls on one channel make
        gRPC itself cancel a share of them (CANCELLED).
        """
        slots = self._slots
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), timeout)
            except asyncio.TimeoutError:
                raise DeadlineExceeded(
                    f"{method} to {self._peer}: still {self._max_inflight} calls in flight"
                    f" after {timeout}s",
                    peer=self._peer,
                    method=method,
                ) from None
        else:
            await slots.acquire()
        try:
            return await fn(request, timeout=timeout, wait_for_ready=False)
        except grpc.RpcError as exc:
            self._raise(exc, method)
        finally:
            slots.release()

    async def request_vote(
        self,
        term: int,
        candidate_id: int,
        last_log_index: int,
        last_log_term: int,
        *,
        pre_vote: bool = False,
        transfer: bool = False,
        timeout: float | None = None,
    ) -> pb.VoteResponse:
        """RequestVote (PreVote when ``pre_vote``); returns the peer's ``VoteResponse``."""
        request = pb.VoteRequest(
            cluster_id=self._cluster_id,
            term=_check_uint("term", term),
            candidate_id=_check_uint("candidate_id", candidate_id),
            to=self._address.node_id,
            last_log_index=_check_uint("last_log_index", last_log_index),
            last_log_term=_check_uint("last_log_term", last_log_term),
            pre_vote=bool(pre_vote),
            transfer=bool(transfer),
        )
        return await self.vote(request, timeout=timeout)

    async def vote(
        self, request: pb.VoteRequest, *, timeout: float | None = None
    ) -> pb.VoteResponse:
        """RequestVote with a ready-made ``VoteRequest`` (stamped like every request)."""
        if not isinstance(request, pb.VoteRequest):
            raise TypeError(f"request must be VoteRequest, not {type(request).__name__}")
        self._check_open("RequestVote")
        self._stamp(request)
        response: pb.VoteResponse = await self._unary(
            "RequestVote",
            self._stub.RequestVote,
            request,
            self._timeout(timeout, self._timeouts.vote),
        )
        return response

    async def append_entries(
        self, request: pb.AppendRequest, *, timeout: float | None = None
    ) -> pb.AppendResponse:
        """One unary AppendEntries (the stream is the fast path for many)."""
        if not isinstance(request, pb.AppendRequest):
            raise TypeError(f"request must be AppendRequest, not {type(request).__name__}")
        self._check_open("AppendEntries")
        self._stamp(request)
        response: pb.AppendResponse = await self._unary(
            "AppendEntries",
            self._stub.AppendEntries,
            request,
            self._timeout(timeout, self._timeouts.append),
        )
        return response

    async def timeout_now(
        self, term: int, leader_id: int, *, timeout: float | None = None
    ) -> pb.TimeoutNowResponse:
        """Ask the peer to campaign at once (leadership transfer)."""
        request = pb.TimeoutNowRequest(
            cluster_id=self._cluster_id,
            term=_check_uint("term", term),
            leader_id=_check_uint("leader_id", leader_id),
            to=self._address.node_id,
        )
        self._check_open("TimeoutNow")
        response: pb.TimeoutNowResponse = await self._unary(
            "TimeoutNow",
            self._stub.TimeoutNow,
            request,
            self._timeout(timeout, self._timeouts.timeout_now),
        )
        return response

    async def read_index(
        self, term: int, from_id: int, context: bytes, *, timeout: float | None = None
    ) -> pb.ReadIndexResponse:
        """Forward a read-index request (identified by ``context``) to the peer (the leader)."""
        if not isinstance(context, bytes):
            raise TypeError(f"context must be bytes, not {type(context).__name__}")
        request = pb.ReadIndexRequest(
            cluster_id=self._cluster_id,
            term=_check_uint("term", term),
            from_id=_check_uint("from_id", from_id),
            to=self._address.node_id,
            context=context,
        )
        self._check_open("ReadIndex")
        response: pb.ReadIndexResponse = await self._unary(
            "ReadIndex",
            self._stub.ReadIndex,
            request,
            self._timeout(timeout, self._timeouts.read_index),
        )
        return response

    async def forward(
        self, request: pb.ForwardRequest, *, timeout: float | None = None
    ) -> pb.ForwardResponse:
        """Hand a client request to the peer (the leader): follower forwarding.

        The deadline defaults to the request's ``timeout_ms`` plus one second
        (the leader answers a timeout itself; the margin covers the trip).
        """
        if not isinstance(request, pb.ForwardRequest):
            raise TypeError(f"request must be ForwardRequest, not {type(request).__name__}")
        self._check_open("Forward")
        self._stamp(request)
        default = request.timeout_ms / 1000.0 + 1.0 if request.timeout_ms else 10.0
        response: pb.ForwardResponse = await self._unary(
            "Forward",
            self._stub.Forward,
            request,
            self._timeout(timeout, default),
        )
        return response

    # -- streams -------------------------------------------------------------------

    async def install_snapshot(
        self, meta: pb.SnapshotMeta, data: SnapshotData, *, timeout: float | None = None
    ) -> pb.SnapshotAck:
        """Upload a snapshot: ``meta``, then ``data`` in chunks of at most 1 MiB.

        ``data`` is ``bytes`` (or bytearray/memoryview) or an iterable or async
        iterable of ``bytes``. The stream carries a running crc32 and the total
        size, which the peer verifies. Returns the peer's ``SnapshotAck`` (which
        may say ``accepted=False``); raises :class:`SnapshotRejected` when the
        peer found the stream damaged or malformed. An exception raised by
        ``data`` itself (or ``TypeError`` for a non-bytes item) ends the
        upload without a trailer, so the peer discards it, and is re-raised.
        """
        if not isinstance(meta, pb.SnapshotMeta):
            raise TypeError(f"meta must be SnapshotMeta, not {type(meta).__name__}")
        check_data(data)
        self._check_open("InstallSnapshot")
        self._stamp(meta)
        source = SourceError()
        try:
            ack: pb.SnapshotAck = await self._stub.InstallSnapshot(
                encode_stream(meta, data, source),
                timeout=self._timeout(timeout, self._timeouts.snapshot),
                wait_for_ready=False,
            )
        except grpc.RpcError as exc:
            if source.error is not None:  # our caller's data failed, not the peer
                raise source.error from None
            self._raise(exc, "InstallSnapshot")
        if source.error is not None:  # the peer answered before noticing
            raise source.error
        return ack

    def heartbeat_stream(self) -> HeartbeatStream:
        """A new pipelined append/heartbeat stream (see :class:`HeartbeatStream`).

        The connection opens at the first ``send()``; use as an async context
        manager so it is closed on exit.
        """
        self._check_open("Stream")

        def open_call() -> Any:
            self._check_open("Stream")
            return self._stub.Stream(wait_for_ready=False)

        stream = HeartbeatStream(open_call, self._stamp, self._peer, self._streams.discard)
        self._streams.add(stream)
        return stream

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"RaftClient({self._address!r}, cluster_id={self._cluster_id!r}, {state})"
