"""What the KV client says when its deadline cuts its last attempt short.

A logic test of the client's router: the members are scripted stubs (the
router's ``stub_factory`` seam), so the order of answers is exact. Real
servers cover the same path in test_client_logic.py, where a loaded machine
made it flaky.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from nexus_raft.errors import NotLeader, Timeout, Unavailable
from nexus_raft.kv.client.router import Router
from nexus_raft.kv.wire import kv_pb2


class _NoLeaderThenSilent:
    """Answers NOT_LEADER (no leader known) ``not_leader`` times, then never answers."""

    def __init__(self, not_leader: int) -> None:
        self.not_leader = not_leader
        self.calls = 0

    async def Put(self, request: Any, timeout: float) -> Any:
        self.calls += 1
        if self.calls <= self.not_leader:
            return kv_pb2.PutResponse(
                error=kv_pb2.Error(code=kv_pb2.NOT_LEADER, message="no leader")
            )
        await asyncio.sleep(timeout)  # what gRPC does with a silent member
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="Deadline Exceeded",
        )


async def _put_until(stub: _NoLeaderThenSilent, seconds: float) -> None:
    router = Router(["h:1"], attempt_timeout=10.0, stub_factory=lambda target: stub)
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        await router.call("Put", kv_pb2.PutRequest(key=b"k", value=b"v"), deadline=deadline)
    finally:
        await router.close()


def test_deadline_cutting_the_last_attempt_short_still_reports_no_leader() -> None:
    """The cluster had no leader; the last attempt, given what was left of the
    deadline, timed out. The client used to give up with "h:1 did not answer
    within 0.00s" (a Timeout) instead of saying no leader was reachable."""
    stub = _NoLeaderThenSilent(not_leader=1)
    with pytest.raises(NotLeader, match=r"gave up at its deadline.*no leader was reachable"):
        asyncio.run(_put_until(stub, 0.3))
    assert stub.calls == 2  # the silent attempt happened, and did not mask the reason


def test_deadline_reached_waiting_for_the_only_attempt_says_so() -> None:
    stub = _NoLeaderThenSilent(not_leader=0)
    with pytest.raises(Timeout, match=r"gave up at its deadline.*answer before the deadline"):
        asyncio.run(_put_until(stub, 0.2))


class _Refused:
    """Every call fails as gRPC fails a call to a closed port."""

    def __init__(self) -> None:
        self.calls = 0

    async def Status(self, request: Any, timeout: float) -> Any:
        self.calls += 1
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="failed to connect to all addresses; last error: connection refused",
        )


async def _status_of_refused(stub: _Refused, fail_fast: bool, seconds: float) -> None:
    router = Router(["h:1", "h:2"], attempt_timeout=2.0, stub_factory=lambda target: stub)
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        await router.call(
            "Status", kv_pb2.StatusRequest(), deadline=deadline, endpoint="h:1",
            fail_fast=fail_fast,
        )  # fmt: skip
    finally:
        await router.close()


def test_a_probe_of_a_refused_member_costs_one_attempt() -> None:
    """``nexusctl status|members|endpoint status|health`` probe every member with
    ``fail_fast``: a member that refuses the connection is reported down after
    one attempt. They used to retry it until the 2 s probe timeout, so every
    such command took 2.5-3.3 s with one member down (0.6 s with all up)."""
    stub = _Refused()
    with pytest.raises(Unavailable, match=r"h:1 is unreachable.*connection refused"):
        asyncio.run(_status_of_refused(stub, True, 30.0))
    assert stub.calls == 1
    # Without fail_fast a fixed endpoint is retried (with backoff) until the deadline.
    stub = _Refused()
    with pytest.raises(Unavailable):
        asyncio.run(_status_of_refused(stub, False, 0.3))
    assert stub.calls > 1
