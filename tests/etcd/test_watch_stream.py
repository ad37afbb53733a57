"""The etcd Watch stream in process: fragmenting, progress requests and notifications.

Fragment splitting is checked on responses built here; the rest goes
through the real ``Watch`` RPC of a one-member node (real gRPC, real
LevelDB) in this test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc

from nexus_raft.consensus import NodeConfig, RaftNode
from nexus_raft.kv.etcd.api import EtcdAPI
from nexus_raft.kv.etcd.command import Kind, encode_command
from nexus_raft.kv.etcd.service_watch import WatchServicer, _Session, _Watch
from nexus_raft.kv.etcd.watch_events import MAX_RESPONSE_BYTES, fragments
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store
from nexus_raft.transport._generated.etcd import kv_pb2, rpc_pb2, rpc_pb2_grpc
from tests.consensus.node.harness import FAST, free_ports

W = rpc_pb2.WatchRequest
_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]


def _event(key: bytes, size: int, rev: int) -> Any:
    return kv_pb2.Event(kv=kv_pb2.KeyValue(key=key, value=b"v" * size, mod_revision=rev))


def test_fragments_split_big_responses_at_event_boundaries() -> None:
    resp = rpc_pb2.WatchResponse(watch_id=3, events=[_event(b"k%d" % i, 700_000, 9)
                                                     for i in range(5)])
    resp.header.revision = 9
    pieces = list(fragments(resp))
    assert len(pieces) == 3  # two 700 KB events fit under 1.5 MiB, three do not
    assert [p.fragment for p in pieces] == [True, True, False]
    assert all(p.ByteSize() < MAX_RESPONSE_BYTES and p.events for p in pieces)
    assert all(p.watch_id == 3 and p.header.revision == 9 for p in pieces)
    assert [e.kv.key for p in pieces for e in p.events] == [e.kv.key for e in resp.events]
    # One event over the limit is never split; a small response is left alone.
    huge = rpc_pb2.WatchResponse(events=[_event(b"h", 2_000_000, 1)])
    assert list(fragments(huge)) == [huge]
    small = rpc_pb2.WatchResponse(events=[_event(b"s", 10, 1), _event(b"t", 10, 1)])
    assert [p.fragment for p in fragments(small)] == [False]


class _Node:
    """A one-member cluster serving the etcd API (``progress_interval`` as given)."""

    def __init__(self, tmp_path: Path, progress_interval: float) -> None:
        port = free_ports(1)[0]
        self.address = f"127.0.0.1:{port}"
        self.node = RaftNode(NodeConfig(
            id=1, listen=self.address, peers={1: self.address}, data_dir=tmp_path / "n1",
            **FAST,  # type: ignore[arg-type]
        ), KVStateMachine())
        self.node.add_servicer(EtcdAPI(self.node, progress_interval=progress_interval).register)
        self.channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> _Node:
        await self.node.start()
        await self.node.wait_for_leader(10)
        self.channel = grpc.aio.insecure_channel(self.address, options=_OPTIONS)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.watch = rpc_pb2_grpc.WatchStub(self.channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.channel is not None:
            await self.channel.close()
        await self.node.shutdown()

    async def put(self, key: bytes, value: bytes = b"v") -> int:
        resp = await self.kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
        return int(resp.header.revision)


class _Stream:
    """One Watch RPC: send requests, read responses with a deadline."""

    def __init__(self, stub: Any) -> None:
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self.call = stub.Watch(self._gen())

    async def _gen(self) -> AsyncIterator[Any]:
        while True:
            yield await self._requests.get()

    def send(self, req: Any) -> None:
        self._requests.put_nowait(req)

    async def read(self, timeout: float = 10.0) -> Any:
        return await asyncio.wait_for(self.call.read(), timeout)

    async def read_until(self, done: Callable[[Any], bool], timeout: float = 20.0) -> list[Any]:
        got: list[Any] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not got or not done(got[-1]):
            got.append(await self.read(max(0.1, deadline - loop.time())))
        return got


def _create(key: bytes, end: bytes = b"", **fields: Any) -> Any:
    return W(create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=end, **fields))


def run(tmp_path: Path, body: Callable[[_Node], Awaitable[None]], interval: float = 600) -> None:
    async def main() -> None:
        async with _Node(tmp_path, interval) as n:
            await body(n)

    asyncio.run(main())


def test_big_revisions_arrive_fragmented_only_when_asked(tmp_path: Path) -> None:
    async def body(n: _Node) -> None:
        plain, split = _Stream(n.watch), _Stream(n.watch)
        plain.send(_create(b"f/", b"f0"))
        split.send(_create(b"f/", b"f0", fragment=True))
        assert (await plain.read()).created and (await split.read()).created
        # One revision with three 600 KB values: 1.8 MB of events.
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"f/%d" % i,
                                                                value=b"x" * 600_000))
               for i in range(3)]
        rev = (await n.kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=10)).header.revision
        whole = await plain.read()
        assert len(whole.events) == 3 and not whole.fragment
        pieces = await split.read_until(lambda r: not r.fragment)
        assert [p.fragment for p in pieces] == [True, False]
        assert [e.kv.key for p in pieces for e in p.events] == [b"f/0", b"f/1", b"f/2"]
        assert {e.kv.mod_revision for p in pieces for e in p.events} == {rev}

    run(tmp_path, body)


def test_a_progress_request_answers_a_revision_every_watch_has_delivered(tmp_path: Path) -> None:
    async def body(n: _Node) -> None:
        for t in range(40):  # 40 revisions of 100 events each
            ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"p/%d" % i,
                                                                    value=b"%d" % t))
                   for i in range(100)]
            await n.kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=10)
        current = await n.put(b"p/last")
        s = _Stream(n.watch)
        # Three watches replaying the whole history, and a progress request at once.
        for _ in range(3):
            s.send(_create(b"p/", b"p0", start_revision=1))
        s.send(W(progress_request=rpc_pb2.WatchProgressRequest()))
        seen: dict[int, int] = {}  # watch id -> highest revision received so far
        answers: list[int] = []
        while True:
            resp = await s.read()
            if resp.created:
                seen[resp.watch_id] = 0
            elif resp.watch_id == -1:
                # Every revision has events under p/, so "every event up to R
                # was delivered" means every watch has reached R.
                assert all(r >= resp.header.revision for r in seen.values()), (
                    resp.header.revision, seen)
                answers.append(resp.header.revision)
                if len(seen) == 3 and min(seen.values()) == current:
                    break
                s.send(W(progress_request=rpc_pb2.WatchProgressRequest()))
            else:
                for e in resp.events:
                    seen[resp.watch_id] = max(seen[resp.watch_id], e.kv.mod_revision)
        assert answers[-1] == current and answers == sorted(answers)

    run(tmp_path, body)


def test_progress_notifications_go_to_watches_that_asked_once_caught_up(tmp_path: Path) -> None:
    async def body(n: _Node) -> None:
        await n.put(b"n/1")
        s = _Stream(n.watch)
        s.send(_create(b"n/", b"n0", watch_id=7, progress_notify=True))
        s.send(_create(b"n/", b"n0", watch_id=8))
        assert [(await s.read()).watch_id for _ in range(2)] == [7, 8]
        rev = await n.put(b"n/2")
        got = await s.read_until(
            lambda r: not r.events and r.watch_id == 7 and r.header.revision == rev)
        assert sorted(r.watch_id for r in got if r.events) == [7, 8]  # the put, on each
        assert all(r.watch_id == 7 for r in got if not r.events)  # 8 did not ask
        again = await s.read_until(lambda r: True)  # the next interval's notice
        assert [(r.watch_id, len(r.events), r.header.revision) for r in again] == [(7, 0, rev)]

    run(tmp_path, body, interval=0.3)


def test_a_watch_from_a_compacted_revision_is_created_then_canceled(tmp_path: Path) -> None:
    async def body(n: _Node) -> None:
        for i in range(5):
            rev = await n.put(b"c/%d" % i)
        await n.kv.Compact(rpc_pb2.CompactionRequest(revision=rev - 1), timeout=10)
        s = _Stream(n.watch)
        s.send(_create(b"c/", b"c0", start_revision=2))
        created, canceled = await s.read(), await s.read()
        assert created.created and not created.canceled
        assert canceled.canceled and canceled.compact_revision == rev - 1
        assert canceled.watch_id == created.watch_id

    run(tmp_path, body)


def test_progress_revision_never_passes_an_event_not_yet_queued(tmp_path: Path) -> None:
    """The rule behind progress answers, on a real state machine and watch stream."""
    with Store.open(tmp_path / "store") as store:
        sm = KVStateMachine()
        sm.open(store)

        def put(index: int) -> None:
            req = rpc_pb2.PutRequest(key=b"k%02d" % index, value=b"v")
            sm.apply(index, encode_command(Kind.PUT, req))

        for i in range(1, 11):
            put(i)
        session = _Session(WatchServicer(SimpleNamespace(id=1, cluster_id="c", state_machine=sm)))
        stream = sm.watch_range(b"k", b"l", 1)
        w = _Watch(1, stream, frozenset(), False, False, False)
        session.watches[1] = w
        assert session.progress_revision() == 0  # history not taken yet
        for _ in range(4):
            assert stream.poll() is not None
        # Revision 4 might have more events still to come: 3 is what is complete.
        assert session.progress_revision() == 3
        w.holding = 3  # a pump holds revisions 3.. while the queue is full
        assert session.progress_revision() == 2
        w.holding = None
        while stream.poll() is not None:
            pass
        assert session.progress_revision() == 10  # caught up
        put(11)  # published to the stream, not taken yet
        assert session.progress_revision() == 10
        assert stream.poll() is not None
        assert session.progress_revision() == 11
        stream.close()
        sm.close()
