"""The node simulator's parts on their own: virtual time, processes, network, checks.

Each check is shown able to fail (a check that cannot fail proves nothing):
the observer flags two members applying different results, a session
answering a retried write differently, and a member coming back without a
vote or an entry it had persisted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from nexus_raft.consensus.core.messages import Entry, EntryType, HardState
from nexus_raft.kv.commands import KVCommand, KVOp, ResultCode, encode_result
from nexus_raft.transport._generated import raft_pb2 as pb
from tests.sim.checker import Violation
from tests.sim_node.loop import Deadlock, Process, SimExecutor, VirtualLoop
from tests.sim_node.net import SimNetwork
from tests.sim_node.observe import Observer


def _run(loop: VirtualLoop, coro: Any) -> Any:
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_virtual_time_moves_only_when_nothing_can_run() -> None:
    loop = VirtualLoop()

    async def main() -> float:
        await asyncio.sleep(3600)
        return loop.time()

    t0 = time.perf_counter()
    assert _run(loop, main()) == 3600
    assert time.perf_counter() - t0 < 1.0


def test_a_killed_process_runs_nothing_more_and_a_paused_one_runs_late() -> None:
    loop = VirtualLoop()
    ran: list[tuple[str, float]] = []
    victim, sleeper = Process("victim"), Process("sleeper")

    async def tick(name: str) -> None:
        while True:
            await asyncio.sleep(1)
            ran.append((name, loop.time()))

    async def main() -> None:
        loop.create_task(tick("victim"), context=loop.context_of(victim))
        loop.create_task(tick("sleeper"), context=loop.context_of(sleeper))
        await asyncio.sleep(2.5)
        loop.kill(victim)
        loop.pause(sleeper)
        await asyncio.sleep(3)
        loop.resume(sleeper)
        await asyncio.sleep(0.1)

    _run(loop, main())
    assert [t for n, t in ran if n == "victim"] == [1, 2]
    # The sleeper's timer at 3 fired while it was stopped: it ran when resumed (5.5).
    assert [t for n, t in ran if n == "sleeper"] == [1, 2, 5.5]


def test_deadlock_is_reported() -> None:
    loop = VirtualLoop()

    async def main() -> None:
        await loop.create_future()

    with pytest.raises(Deadlock):
        _run(loop, main())


def test_a_livelock_is_reported() -> None:
    loop = VirtualLoop()
    loop.livelock = 10_000

    async def main() -> None:
        while True:
            await asyncio.sleep(0)

    with pytest.raises(Deadlock, match="livelock"):
        _run(loop, main())


def test_executor_work_runs_later_in_its_process_and_dies_with_it() -> None:
    loop = VirtualLoop()
    proc = Process("p")
    done: list[float] = []
    ex = SimExecutor(loop, random.Random(1), lambda r: 0.5)

    async def submit() -> None:
        await loop.run_in_executor(ex, lambda: done.append(loop.time()))
        ex.submit(lambda: done.append(-1.0))  # killed before it runs

    async def main() -> None:
        loop.create_task(submit(), context=loop.context_of(proc))
        await asyncio.sleep(0.75)
        loop.kill(proc)
        await asyncio.sleep(5)

    _run(loop, main())
    assert done == [0.5]


def _net(loop: VirtualLoop) -> SimNetwork:
    net = SimNetwork(loop, random.Random(2), Counter())
    for h in (1, 2):
        net.add_host(h)
    return net


def _serve_one(net: SimNetwork, host: int) -> None:
    from tests.sim_node.net import Endpoint

    proc = Process(f"server{host}")

    async def serve(ep: Endpoint, req: Any) -> Any:
        return pb.VoteResponse(term=req.term + 1)

    net.listen(Endpoint(host, proc, net.loop.context_of(proc), "c", raft=serve))


def test_unary_calls_answer_and_a_cut_makes_them_miss_their_deadline() -> None:
    loop = VirtualLoop()
    net = _net(loop)
    _serve_one(net, 2)

    def fail(kind: str, detail: str) -> BaseException:
        return RuntimeError(kind)

    async def serve(ep: Any, req: Any) -> Any:
        return await ep.raft(ep, req)

    async def main() -> tuple[int, str]:
        got = await net.call(1, net.address(2), pb.VoteRequest(term=4), serve, 1.0, fail)
        net.set_cut(1, 2, True)
        try:
            await net.call(1, net.address(2), pb.VoteRequest(term=4), serve, 1.0, fail)
        except RuntimeError as exc:
            return got.term, str(exc)
        return got.term, "answered through a cut"

    assert _run(loop, main()) == (5, "deadline")


def test_a_connection_is_fifo_and_breaks_as_a_whole() -> None:
    loop = VirtualLoop()
    net = _net(loop)
    _serve_one(net, 2)
    got: list[int] = []
    broken: list[str] = []

    async def main() -> None:
        conn = net.connect(1, net.address(2))
        conn.on_server = lambda m: got.append(m.term)
        conn.on_broken = lambda why, kind: broken.append(why)
        for t in range(20):
            conn.to_server(pb.VoteRequest(term=t))
        await asyncio.sleep(1)
        conn.fail("test")
        conn.to_server(pb.VoteRequest(term=99))
        await asyncio.sleep(1)

    _run(loop, main())
    assert got == list(range(20))
    assert broken == ["test"]


def _observer() -> tuple[Observer, list[Violation]]:
    seen: list[Violation] = []
    return Observer(Counter(), lambda row: None, seen.append), seen


def _cmd(key: bytes, value: bytes, client: int = 0, seq: int = 0) -> bytes:
    return KVCommand(KVOp.PUT, key, value, client_id=client, seq=seq).encode()


def _res(code: ResultCode, rev: int) -> bytes:
    return encode_result(code, rev)


def test_two_members_applying_different_results_is_a_violation() -> None:
    obs, seen = _observer()
    c = _cmd(b"k", b"v")
    obs.applied(1, [(5, c)], [_res(ResultCode.OK, 3)])
    obs.applied(2, [(5, c)], [_res(ResultCode.OK, 3)])
    assert not seen
    obs.applied(3, [(5, c)], [_res(ResultCode.OK, 1)])
    assert seen and seen[0].invariant == "state machine safety"


def test_a_retried_write_applied_twice_is_a_violation() -> None:
    obs, seen = _observer()
    obs.applied(1, [(5, _cmd(b"k", b"v", 7, 1))], [_res(ResultCode.OK, 3)])
    obs.applied(1, [(6, _cmd(b"k", b"v", 7, 1))], [_res(ResultCode.OK, 3)])  # deduplicated
    assert not seen
    obs.applied(1, [(7, _cmd(b"k", b"v", 7, 1))], [_res(ResultCode.OK, 4)])  # applied again
    assert seen and seen[0].invariant == "session exactly-once"


def test_a_member_that_lost_its_persisted_vote_or_entry_is_caught_on_restart() -> None:
    obs, _ = _observer()
    tap = obs.tap(1)
    obs.taps[1].log_prefix, obs.taps[1].meta_prefix = b"LLLL", b"MMMM"
    from nexus_raft.consensus.log.codec import (
        HARD_KEY,
        encode_entry,
        encode_hard_state,
        encode_index,
    )

    tap("s", [(b"MMMM" + HARD_KEY, encode_hard_state(HardState(3, 2, 1)))], False)
    tap("s", [(b"LLLL" + encode_index(1), encode_entry(Entry(1, 3, EntryType.NORMAL, b"x")))],
        False)
    tap("s", [(b"\0\0\0\0flush", b"")], True)  # the sync: both are persisted now
    with pytest.raises(Violation, match="durable vote"):
        obs.restarted(1, HardState(3, 0, 1), 0, lambda i: 3)
    with pytest.raises(Violation, match="durable log"):
        obs.restarted(1, HardState(3, 2, 1), 0, lambda i: None)
    obs.restarted(1, HardState(3, 2, 1), 0, lambda i: 3)


def test_the_simulated_transport_has_every_call_of_the_real_one() -> None:
    """A peer RPC added to the real transport must be added here too (this test says so)."""
    import inspect

    from nexus_raft.transport.client import RaftClient
    from nexus_raft.transport.handler import RaftHandler
    from tests.sim_node.transport import SERVED, SimRaftClient

    real = {n for n, f in inspect.getmembers(RaftClient, inspect.isfunction)
            if not n.startswith("_")}
    missing = sorted(n for n in real if not hasattr(SimRaftClient, n))
    assert not missing, f"SimRaftClient lacks {missing}: add them to tests/sim_node/transport.py"
    handler = {n for n, _ in inspect.getmembers(RaftHandler, inspect.isfunction)
               if not n.startswith("_")}
    unserved = sorted(handler - SERVED)
    assert not unserved, f"the simulated server does not call {unserved}"


def test_a_retried_write_inside_a_command_group_is_checked_too() -> None:
    from nexus_raft.kv.commands import encode_group, encode_group_result

    obs, seen = _observer()
    group = encode_group([_cmd(b"a", b"1", 7, 1), _cmd(b"b", b"2", 8, 4)])
    answers = encode_group_result([_res(ResultCode.OK, 3), _res(ResultCode.OK, 3)])
    obs.applied(1, [(5, group)], [answers])
    retry = encode_group([_cmd(b"b", b"2", 8, 4)])
    obs.applied(1, [(6, retry)], [encode_group_result([_res(ResultCode.OK, 3)])])
    assert not seen
    obs.applied(1, [(7, retry)], [encode_group_result([_res(ResultCode.OK, 4)])])
    assert seen and seen[0].invariant == "session exactly-once"
