"""The Raft peer transport over the simulated network (a ``PeerTransport``).

:class:`SimTransport` gives a RaftNode a client pool and a server with the
interface of :class:`~nexus_raft.transport.RaftClientPool` /
:class:`~nexus_raft.transport.RaftServer` (and the same contracts, taken
from their docstrings and the gRPC servicer they stand in for):

- unary calls (vote, TimeoutNow, ReadIndex) check the cluster id, map a
  failing handler to ``RemoteError``, an unreachable peer to
  ``PeerUnavailable`` and a missed deadline to ``DeadlineExceeded``;
- the append/heartbeat stream (:class:`SimHeartbeatStream`) keeps the
  delivery contract of ``HeartbeatStream``: every request sent is either
  answered (in order) or listed in a ``StreamReset`` when its connection
  breaks; after a break ``send`` fails fast until a backoff has passed;
  the first request on a connection carries the cluster id;
- a snapshot upload streams ``meta``, the data chunks and the trailer
  (built by the real ``encode_stream``) and the receiving handler reads
  them through the real ``ChunkReader``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from nexus_raft.consensus.node.server import MismatchedAnswer
from nexus_raft.transport import SnapshotCorrupted
from nexus_raft.transport._generated import raft_pb2 as pb
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.errors import (
    ClientClosed,
    ClusterMismatch,
    DeadlineExceeded,
    PeerRefused,
    PeerUnavailable,
    RemoteError,
    SnapshotRejected,
)
from nexus_raft.transport.handler import RaftHandler
from nexus_raft.transport.options import Timeouts
from nexus_raft.transport.pool import RaftClientPool
from nexus_raft.transport.server import ExtraServicer, RaftServer
from nexus_raft.transport.snapshot import ChunkReader, SnapshotData, SourceError, encode_stream
from nexus_raft.transport.stream import StreamReset
from nexus_raft.transport.tls import TLSConfig
from tests.sim_node.loop import PROCESS
from tests.sim_node.net import END, Conn, Endpoint, Fail, Refused, SimNetwork

__all__ = ["SERVED", "SimTransport"]

SERVED = frozenset(
    {"request_vote", "append_entries", "install_snapshot", "timeout_now", "read_index", "forward"}
)
"""The RaftHandler methods the simulated server calls."""

_BACKOFF_INITIAL = 0.05
_BACKOFF_MAX = 1.0
_KINDS: dict[str, type[Exception]] = {
    "refused": PeerRefused,
    "unavailable": PeerUnavailable,
    "deadline": DeadlineExceeded,
    "internal": RemoteError,
    "cluster": ClusterMismatch,
    "rejected": SnapshotRejected,
}


def peer_fail(peer: str, method: str) -> Fail:
    """The transport error a failed peer call raises."""

    def fail(kind: str, detail: str) -> BaseException:
        cls = _KINDS.get(kind, RemoteError)
        return cls(f"{method} to {peer} failed: {detail}", peer=peer, method=method)

    return fail


def _check_cluster(ep: Endpoint, got: str) -> None:
    if got != ep.cluster_id:
        raise Refused("cluster", f"cluster id mismatch: {got!r} is not {ep.cluster_id!r}")


def _mismatched(ep: Endpoint, method: str, exc: MismatchedAnswer) -> Refused:
    """A request handed another request's answer: recorded (a violation at the next
    poll), and answered as the gRPC server would (an internal error)."""
    ep.mismatched.append(f"member {ep.host}'s {method} handler: {exc}")
    return Refused("internal", str(exc))


def _refused(ep: Endpoint, exc: PeerRefused) -> Refused:
    """A refusal on purpose is answered PERMISSION_DENIED (the client raises PeerRefused)."""
    ep.refusals[exc.kind] += 1
    return Refused("refused", str(exc))


async def _unary(ep: Endpoint, request: Any, method: str, response_type: type) -> Any:
    _check_cluster(ep, request.cluster_id)
    if ep.raft is None:
        raise Refused("unavailable", "no peer service here")
    try:
        response = await getattr(ep.raft, method)(request)
    except PeerRefused as exc:
        raise _refused(ep, exc) from exc
    except MismatchedAnswer as exc:
        raise _mismatched(ep, method, exc) from exc
    if not isinstance(response, response_type):
        raise Refused("internal", f"{method} handler returned {type(response).__name__}")
    return response


async def _serve_vote(ep: Endpoint, request: Any) -> Any:
    answer = await _unary(ep, request, "request_vote", pb.VoteResponse)
    ep.vote_sent(ep.host, request.candidate_id, answer)  # persisted before it leaves?
    return answer


async def _serve_timeout_now(ep: Endpoint, request: Any) -> Any:
    return await _unary(ep, request, "timeout_now", pb.TimeoutNowResponse)


async def _serve_read_index(ep: Endpoint, request: Any) -> Any:
    return await _unary(ep, request, "read_index", pb.ReadIndexResponse)


async def _serve_append(ep: Endpoint, request: Any) -> Any:
    return await _unary(ep, request, "append_entries", pb.AppendResponse)


async def _serve_forward(ep: Endpoint, request: Any) -> Any:
    if ep.raft is not None and not callable(getattr(ep.raft, "forward", None)):
        raise Refused("unimplemented", "this member does not take forwarded requests")
    return await _unary(ep, request, "forward", pb.ForwardResponse)


class SimTransport:
    """One host's peer transport; ``kv`` is attached to the endpoint at ``start()``."""

    def __init__(self, net: SimNetwork, host: int) -> None:
        self.net = net
        self.host = host
        self.kv: Any = None
        self.endpoint: Endpoint | None = None

    def client_pool(self, *, cluster_id: str, tls: TLSConfig | None,
                    max_message_bytes: int) -> RaftClientPool:
        """A pool of simulated clients from this host."""
        return SimPool(self, cluster_id)

    def server(self, handler: RaftHandler, listen: str, *, tls: TLSConfig | None,
               extra_servicers: Iterable[ExtraServicer], cluster_id: str,
               peer_identity: Any = None) -> RaftServer:
        """A simulated server on this host's address (no TLS: identities are not checked)."""
        return SimServer(self, handler, listen, cluster_id)


class SimPool(RaftClientPool):
    """``RaftClientPool`` over the simulated network: one client per node id."""

    def __init__(self, transport: SimTransport, cluster_id: str) -> None:
        super().__init__(cluster_id=cluster_id)
        self._t = transport
        self._sim: dict[int, SimRaftClient] = {}

    async def get(self, address: NodeAddress) -> Any:
        """The client for ``address`` (replaced when the node's endpoint changed)."""
        if self.closed:
            raise ClientClosed("the pool is closed")
        client = self._sim.get(address.node_id)
        if client is not None and client.address == address and not client.closed:
            return client
        if client is not None:
            await client.close()
        client = SimRaftClient(self._t.net, self._t.host, address, self._cluster_id)
        self._sim[address.node_id] = client
        return client

    async def remove(self, node_id: int) -> bool:
        """Close and forget the client for ``node_id``."""
        client = self._sim.pop(node_id, None)
        if client is None:
            return False
        await client.close()
        return True

    async def close(self) -> None:
        """Close every client."""
        self._closed = True
        clients, self._sim = list(self._sim.values()), {}
        for client in clients:
            await client.close()


class SimRaftClient:
    """The calls a RaftNode makes to one peer (``RaftClient``'s interface)."""

    def __init__(self, net: SimNetwork, src: int, address: NodeAddress, cluster_id: str) -> None:
        self.net = net
        self.src = src
        self.address = address
        self.cluster_id = cluster_id
        self.target = address.target
        self.timeouts = Timeouts()
        self.closed = False
        self._streams: list[SimHeartbeatStream] = []

    async def close(self) -> None:
        """Close open streams; later calls raise ClientClosed."""
        if self.closed:
            return
        self.closed = True
        for stream in self._streams:
            await stream.aclose()

    def _check_open(self, method: str) -> None:
        if self.closed:
            raise ClientClosed(f"client for {self.target} is closed", peer=self.target,
                               method=method)

    def _stamp(self, request: Any) -> None:
        request.cluster_id = self.cluster_id
        if request.to == 0:
            request.to = self.address.node_id

    async def _call(self, method: str, request: Any, serve: Any, timeout: float | None) -> Any:
        self._check_open(method)
        return await self.net.call(self.src, self.target, request, serve, timeout,
                                   peer_fail(self.target, method))

    async def vote(self, request: pb.VoteRequest, *, timeout: float | None = None) -> Any:
        """RequestVote / PreVote."""
        self._stamp(request)
        return await self._call("RequestVote", request, _serve_vote,
                                timeout or self.timeouts.vote)

    async def request_vote(self, term: int, candidate_id: int, last_log_index: int,
                           last_log_term: int, *, pre_vote: bool = False, transfer: bool = False,
                           timeout: float | None = None) -> Any:
        """RequestVote from its fields."""
        request = pb.VoteRequest(cluster_id=self.cluster_id, term=term, candidate_id=candidate_id,
                                 to=self.address.node_id, last_log_index=last_log_index,
                                 last_log_term=last_log_term, pre_vote=pre_vote, transfer=transfer)
        return await self.vote(request, timeout=timeout)

    async def append_entries(self, request: pb.AppendRequest, *,
                             timeout: float | None = None) -> Any:
        """One unary AppendEntries."""
        self._stamp(request)
        return await self._call("AppendEntries", request, _serve_append,
                                timeout or self.timeouts.append)

    async def forward(self, request: pb.ForwardRequest, *, timeout: float | None = None) -> Any:
        """Follower forwarding: hand a client request to the peer (the leader)."""
        self._stamp(request)
        default = request.timeout_ms / 1000.0 + 1.0 if request.timeout_ms else 10.0
        return await self._call("Forward", request, _serve_forward, timeout or default)

    async def timeout_now(self, term: int, leader_id: int, *,
                          timeout: float | None = None) -> Any:
        """Ask the peer to campaign now."""
        request = pb.TimeoutNowRequest(cluster_id=self.cluster_id, term=term,
                                       leader_id=leader_id, to=self.address.node_id)
        return await self._call("TimeoutNow", request, _serve_timeout_now,
                                timeout or self.timeouts.timeout_now)

    async def read_index(self, term: int, from_id: int, context: bytes, *,
                         timeout: float | None = None) -> Any:
        """Forward a read index to the peer."""
        request = pb.ReadIndexRequest(cluster_id=self.cluster_id, term=term, from_id=from_id,
                                      to=self.address.node_id, context=context)
        return await self._call("ReadIndex", request, _serve_read_index,
                                timeout or self.timeouts.read_index)

    def heartbeat_stream(self) -> SimHeartbeatStream:
        """A new pipelined append/heartbeat stream."""
        self._check_open("Stream")
        stream = SimHeartbeatStream(self)
        self._streams.append(stream)
        return stream

    async def install_snapshot(self, meta: pb.SnapshotMeta, data: SnapshotData, *,
                               timeout: float | None = None) -> Any:
        """Upload a snapshot; returns the peer's ``SnapshotAck``."""
        self._check_open("InstallSnapshot")
        self._stamp(meta)
        loop = asyncio.get_running_loop()
        fail = peer_fail(self.target, "InstallSnapshot")
        conn = self.net.connect(self.src, self.target)
        done: asyncio.Future[Any] = loop.create_future()
        conn.on_client = lambda ack: done.done() or done.set_result(ack)
        conn.on_broken = lambda why, kind: done.done() or done.set_exception(fail(kind, why))
        if conn.ep is not None:
            _SnapshotServer(self.net, conn, conn.ep)
        source = SourceError()
        timer = loop.call_later(timeout or self.timeouts.snapshot, _expire, done, fail)
        try:
            async for message in encode_stream(meta, data, source):
                if done.done():
                    break
                conn.to_server(message)
            conn.to_server(END)
            ack = await done
        except BaseException:
            conn.close()
            self.net.hit("snapshot upload interrupted")
            if source.error is not None:
                raise source.error from None
            raise
        finally:
            timer.cancel()
        if source.error is not None:
            raise source.error
        return ack


def _expire(fut: asyncio.Future[Any], fail: Fail) -> None:
    if not fut.done():
        fut.set_exception(fail("deadline", "deadline exceeded"))


@dataclass(eq=False)
class _ClientConn:
    conn: Conn
    pending: collections.deque[Any]
    responses: collections.deque[Any]
    opened: bool = False
    why: tuple[str, str] | None = None


class SimHeartbeatStream:
    """``HeartbeatStream`` over simulated connections (see the module docstring)."""

    def __init__(self, client: SimRaftClient) -> None:
        self._client = client
        self._net = client.net
        self._send_conn: _ClientConn | None = None
        self._read: collections.deque[_ClientConn] = collections.deque()
        self._wake = asyncio.Event()
        self._closed = False
        self._retry_at = 0.0
        self._backoff = _BACKOFF_INITIAL

    async def __aenter__(self) -> SimHeartbeatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    async def aclose(self) -> None:
        """Close the stream; unanswered requests are dropped."""
        if self._closed:
            return
        self._closed = True
        for c in self._read:
            c.conn.close()
        self._read.clear()
        self._send_conn = None
        self._wake.set()

    def _open(self) -> _ClientConn:
        conn = self._net.connect(self._client.src, self._client.target)
        c = _ClientConn(conn, collections.deque(), collections.deque())

        def on_response(resp: Any) -> None:
            c.responses.append(resp)
            self._wake.set()

        def on_broken(why: str, kind: str) -> None:
            c.why = (why, kind)
            self._wake.set()

        conn.on_client = on_response
        conn.on_broken = on_broken
        if conn.ep is not None:
            _StreamServer(self._net, conn, conn.ep)
        return c

    def _broken(self, c: _ClientConn) -> None:
        if self._send_conn is c:
            self._send_conn = None
            loop = asyncio.get_running_loop()
            self._retry_at = loop.time() + self._backoff * (0.5 + self._net.rng.random() / 2)
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)

    async def send(self, request: pb.AppendRequest) -> None:
        """Send one request (never blocks: the simulated connection has no flow control)."""
        if not isinstance(request, pb.AppendRequest):
            raise TypeError(f"request must be AppendRequest, not {type(request).__name__}")
        target = self._client.target
        if self._closed:
            raise ClientClosed("heartbeat stream is closed", peer=target, method="Stream")
        self._client._stamp(request)
        c = self._send_conn
        if c is None:
            wait = self._retry_at - asyncio.get_running_loop().time()
            if wait > 0:
                raise PeerUnavailable(f"stream to {target} is reconnecting", peer=target,
                                      method="Stream")
            c = self._send_conn = self._open()
            self._read.append(c)
            self._wake.set()
        if c.opened:
            request.ClearField("cluster_id")
        c.opened = True
        c.pending.append(request)
        c.conn.to_server(request)

    def __aiter__(self) -> SimHeartbeatStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._read:
                c = self._read[0]
                if c.responses:
                    if c.pending:
                        c.pending.popleft()
                    self._backoff = _BACKOFF_INITIAL
                    return c.responses.popleft()
                if c.why is not None:
                    why, kind = c.why
                    self._broken(c)
                    self._read.popleft()
                    lost = tuple(c.pending)
                    c.pending.clear()
                    error = peer_fail(self._client.target, "Stream")(kind, why)
                    return StreamReset(error=error, lost=lost)  # type: ignore[arg-type]
            self._wake.clear()
            await self._wake.wait()


class _StreamServer:
    """The server end of one append/heartbeat stream (the gRPC servicer's ``Stream``)."""

    def __init__(self, net: SimNetwork, conn: Conn, ep: Endpoint) -> None:
        self._net = net
        self._conn = conn
        self._ep = ep
        self._first = True
        self._tasks: collections.deque[asyncio.Task[Any]] = collections.deque()
        self._pump: asyncio.Task[None] | None = None
        conn.on_server = self._request
        conn.server_broken = self._broken

    def _request(self, request: Any) -> None:
        got = request.cluster_id
        if got != self._ep.cluster_id and (self._first or got):
            self._conn.fail(f"cluster id mismatch: {got!r}", "cluster")
            return
        self._first = False
        if self._ep.raft is None:
            self._conn.fail("no peer service here")
            return
        self._tasks.append(asyncio.get_running_loop().create_task(
            self._ep.raft.append_entries(request)))
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        while self._tasks:
            task = self._tasks[0]
            try:
                response = await task
            except PeerRefused as exc:
                self._conn.fail(str(_refused(self._ep, exc)), "refused")
                return
            except MismatchedAnswer as exc:
                self._conn.fail(str(_mismatched(self._ep, "append_entries", exc)), "internal")
                return
            except Exception as exc:
                self._conn.fail(f"append_entries handler failed: {exc}", "internal")
                return
            self._tasks.popleft()
            if not isinstance(response, pb.AppendResponse):
                self._conn.fail("handler returned a bad response", "internal")
                return
            self._conn.to_client(response)
        self._pump = None

    def _broken(self, why: str) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None


class _SnapshotServer:
    """The server end of one snapshot upload (the gRPC servicer's ``InstallSnapshot``)."""

    def __init__(self, net: SimNetwork, conn: Conn, ep: Endpoint) -> None:
        self._conn = conn
        self._ep = ep
        self._queue: collections.deque[Any] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._event: asyncio.Event | None = None
        conn.on_server = self._message
        conn.server_broken = self._broken

    def _message(self, message: Any) -> None:
        self._queue.append(message)
        if self._event is not None:
            self._event.set()
        if self._task is None:
            self._event = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _messages(self) -> AsyncIterator[Any]:
        assert self._event is not None
        while True:
            while not self._queue:
                self._event.clear()
                await self._event.wait()
            message = self._queue.popleft()
            if message is END:
                return
            yield message

    async def _serve(self) -> None:
        conn, ep = self._conn, self._ep
        messages = self._messages()
        first = await messages.__anext__()
        if first.WhichOneof("part") != "meta":
            conn.fail("snapshot stream must start with meta", "rejected")
            return
        meta = first.meta
        if meta.cluster_id != ep.cluster_id:
            conn.fail("cluster id mismatch", "cluster")
            return
        if ep.raft is None:
            conn.fail("no peer service here")
            return
        chunks = ChunkReader(messages)
        try:
            ack = await ep.raft.install_snapshot(meta, chunks)
        except SnapshotCorrupted as exc:
            conn.fail(str(exc), "rejected")
            return
        except PeerRefused as exc:
            conn.fail(str(_refused(ep, exc)), "refused")
            return
        except MismatchedAnswer as exc:
            conn.fail(str(_mismatched(ep, "install_snapshot", exc)), "internal")
            return
        except Exception as exc:
            conn.fail(str(chunks.error or exc), "rejected" if chunks.error else "internal")
            return
        if chunks.error is not None:
            conn.fail(str(chunks.error), "rejected")
            return
        if ack.accepted and not chunks.verified:
            try:
                await chunks.drain()
            except SnapshotCorrupted as exc:
                conn.fail(str(exc), "rejected")
                return
        conn.to_client(ack)

    def _broken(self, why: str) -> None:
        # gRPC cancels the handler of a call whose client went away.
        if self._task is not None:
            self._task.cancel()


class SimServer(RaftServer):
    """``RaftServer`` on the simulated network (the KV service rides on the same address)."""

    def __init__(self, transport: SimTransport, handler: RaftHandler, listen: str,
                 cluster_id: str) -> None:
        super().__init__(handler, listen, cluster_id=cluster_id)
        self._t = transport
        self._ep: Endpoint | None = None

    async def start(self) -> int:
        """Start answering on the host's address (in the current process)."""
        process = PROCESS.get()
        assert process is not None, "a simulated server starts inside a process"
        ep = Endpoint(self._t.host, process, contextvars.copy_context(), self.cluster_id,
                      raft=self._handler, kv=self._t.kv, refusals=self._t.net.refusals,
                      mismatched=self._t.net.mismatched, vote_sent=self._t.net.vote_sent)
        self._ep = self._t.endpoint = ep
        self._t.net.listen(ep)
        return self.port

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop answering: calls and connections in progress fail."""
        if self._ep is not None:
            self._t.net.down(self._ep)
            self._ep = None
