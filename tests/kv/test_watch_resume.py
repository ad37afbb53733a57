"""WatchStream resumes exactly where it stopped, also in the middle of a revision.

A logic test: the member side is a scripted stub (which messages a member
sends, and where its stream breaks); the real :class:`WatchStream` runs on
top. One revision can hold many events (a prefix delete, a transaction) and
a member sends them in several messages (at most 256 events or 64 KiB each),
so a stream may break between two events of the same revision.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import grpc

from nexus_raft.kv.client.router import grpc_failure
from nexus_raft.kv.client.watch import WatchStream
from nexus_raft.kv.wire import kv_pb2


def _events(revision: int, keys: Sequence[str]) -> list[Any]:
    return [kv_pb2.WatchEvent(revision=revision, key=k.encode(), value=b"v") for k in keys]


def _broken() -> grpc.aio.AioRpcError:
    """What a real stream raises when its member goes away."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone"
    )


class _Call:
    """One Watch stream of a member: its messages, then a break (or EOF)."""

    def __init__(self, messages: list[Any], breaks: bool) -> None:
        self._messages = list(messages)
        self._breaks = breaks

    async def read(self) -> Any:
        if self._messages:
            return self._messages.pop(0)
        if self._breaks:
            raise _broken()
        await asyncio.Event().wait()  # a live stream with nothing more to say

    def cancel(self) -> None:
        pass


class _Member:
    """Answers Watch(start_revision) from a fixed history, in messages of ``per_message``."""

    def __init__(self, history: list[Any], per_message: int, break_after: int | None) -> None:
        self.history = history
        self.per_message = per_message
        self.break_after = break_after  # messages before the stream breaks (None: never)
        self.starts: list[int] = []

    def Watch(self, request: Any) -> _Call:
        start = int(request.start_revision)
        self.starts.append(start)
        events = [e for e in self.history if e.revision >= start]
        top = max((e.revision for e in self.history), default=0)
        messages = [kv_pb2.WatchResponse(revision=top)]
        for i in range(0, len(events), self.per_message):
            messages.append(
                kv_pb2.WatchResponse(revision=top, events=events[i : i + self.per_message])
            )
        breaks = self.break_after is not None
        if breaks:
            messages = messages[: self.break_after]
            self.break_after = None  # the next stream from this member is healthy
        return _Call(messages, breaks)


class _Router:
    def __init__(self, member: _Member) -> None:
        self.member = member
        self.rng = random.Random(7)
        self.failed: list[str] = []

    def current(self) -> str:
        return "m1"

    def stub(self, target: str) -> _Member:
        return self.member

    def mark_failed(self, target: str) -> None:
        self.failed.append(target)

    def failure(self, err: grpc.aio.AioRpcError) -> str:
        return grpc_failure(err)


async def _collect(stream: WatchStream, n: int) -> list[tuple[int, bytes]]:
    out = []
    for _ in range(n):
        e = await asyncio.wait_for(stream.__anext__(), 10)
        out.append((e.revision, e.key))
    await stream.close()
    return out


def test_stream_broken_in_the_middle_of_a_revision_resumes_without_loss_or_repeat() -> None:
    # Revision 2 is a prefix delete of 5 keys; the member sends 2 events per
    # message, and the stream breaks after the first half of revision 2.
    history = _events(1, ["a"]) + _events(2, ["k0", "k1", "k2", "k3", "k4"]) + _events(3, ["z"])
    member = _Member(history, per_message=2, break_after=3)  # header, [a,k0], [k1,k2]
    router = _Router(member)
    stream = WatchStream(router, cluster_id="c", prefix=b"", start_revision=1, timeout=10)  # type: ignore[arg-type]
    got = asyncio.run(_collect(stream, 7))
    assert got == [(1, b"a")] + [(2, f"k{i}".encode()) for i in range(5)] + [(3, b"z")]
    assert member.starts == [1, 2]  # resumed AT revision 2, not after it
    assert router.failed == ["m1"]


def test_stream_broken_between_revisions_asks_for_the_last_one_again_and_drops_repeats() -> None:
    history = _events(1, ["a"]) + _events(2, ["b"]) + _events(3, ["c"])
    member = _Member(history, per_message=1, break_after=3)  # header, [a], [b]
    stream = WatchStream(_Router(member), cluster_id="c", prefix=b"", start_revision=1, timeout=10)  # type: ignore[arg-type]
    assert asyncio.run(_collect(stream, 3)) == [(1, b"a"), (2, b"b"), (3, b"c")]
    # Revision 2 was complete when the stream broke... but the stream cannot
    # know that, so it asks for revision 2 again and drops what it has.
    assert member.starts == [1, 2]
