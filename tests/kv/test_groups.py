"""Command groups: a client batch as ONE log entry, each command applied as if on its own.

KVStateMachine on real LevelDB files; the service test runs the real
KVService over the test-double nodes and counts log entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.commands import (
    KVCommand,
    KVResult,
    ResultCode,
    encode_group,
    encode_group_result,
    split_group,
    split_group_result,
)
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store

from .kv_double import double_cluster


def put(key: str, value: bytes, **kw: int) -> bytes:
    return KVCommand.put(key, value, **kw).encode()


def results(raw: bytes) -> list[KVResult]:
    return [KVResult.decode(r) for r in split_group_result(raw)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as s:
        yield s


def test_group_codec_round_trip_and_rejects_damage() -> None:
    parts = [put("a", b"1"), b"", put("b", b"x" * 300)]
    raw = encode_group(parts)
    assert split_group(raw) == parts
    assert split_group_result(encode_group_result([b"r1", b""])) == [b"r1", b""]
    for bad in (raw[:-1], raw + b"\0", raw[:3], b"\xc1" + raw[1:], encode_group_result([b"r"])):
        with pytest.raises(InvalidCommand):
            split_group(bad)


def test_a_group_applies_each_command_with_its_own_revision_and_session(store: Store) -> None:
    sm = KVStateMachine(store)
    group = encode_group(
        [
            put("k", b"1", client_id=5, seq=1, timestamp_ms=1000),
            put("k", b"2", client_id=6, seq=1, timestamp_ms=1000),
            KVCommand.cas("k", b"1", b"3").encode(),  # sees the group's own writes: fails
            KVCommand.delete("k", client_id=7, seq=1, timestamp_ms=1000).encode(),
        ]
    )
    out = results(sm.apply(1, group))
    assert [(r.code, r.revision, r.prev_value) for r in out] == [
        (ResultCode.OK, 1, None),
        (ResultCode.OK, 2, b"1"),
        (ResultCode.CAS_FAILED, 2, b"2"),
        (ResultCode.OK, 3, b"2"),
    ]
    assert sm.applied_index() == 1 and sm.revision() == 3
    # A retry of one write (same session and seq) in a later group is answered
    # from its session, the other command of that group applies.
    again = results(
        sm.apply(2, encode_group([put("k", b"2", client_id=6, seq=1), put("z", b"9")]))
    )
    assert (again[0].code, again[0].revision) == (ResultCode.OK, 2)
    assert (again[1].code, again[1].revision) == (ResultCode.OK, 4)
    assert sm.get("k") == (None, 0) and sm.get("z") == (b"9", 4)


def test_a_group_applied_before_a_restart_is_answered_from_sessions(tmp_path: Path) -> None:
    group = encode_group([put("a", b"1", client_id=9, seq=3), put("b", b"2")])
    with Store.open(tmp_path / "s") as store:
        first = results(KVStateMachine(store).apply(4, group))
    with Store.open(tmp_path / "s") as store:
        sm = KVStateMachine(store)
        replay = results(sm.apply_batch([(4, group)])[0])
        assert replay[0] == first[0]  # the session's stored result
        assert replay[1].code is ResultCode.ALREADY_APPLIED
        assert sm.revision() == 2


def test_damaged_or_nested_groups_become_error_results(store: Store) -> None:
    sm = KVStateMachine(store)
    bad = KVResult.decode(sm.apply(1, encode_group([put("a", b"1")])[:-1]))
    assert bad.code is ResultCode.INVALID
    nested = results(sm.apply(2, encode_group([encode_group([put("a", b"1")]), put("b", b"2")])))
    assert nested[0].code is ResultCode.INVALID and "nest" in nested[0].error
    assert nested[1].code is ResultCode.OK
    assert sm.get("a") == (None, 0) and sm.applied_index() == 2


def test_a_client_batch_is_one_log_entry() -> None:
    async def body() -> None:
        async with double_cluster() as c, Client([c.addresses[1]], timeout=5) as client:
            await client.put("warm", b"0")
            entries = c.cluster.kv.entries
            await asyncio.gather(*(client.put(f"k/{i}", b"x") for i in range(100)))
            batches = client.batches_sent
            assert c.cluster.kv.applied == 101
            # Every batch after the first put is one entry, however many writes it held.
            assert c.cluster.kv.entries - entries <= batches - 1 < 100

    asyncio.run(asyncio.wait_for(body(), 30))
