"""The Batch fast path: command bytes equal KVCommand.encode's, result filling, slot alignment."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from nexus_raft.errors import InvalidArgument, TooLarge
from nexus_raft.kv.commands import KVCommand, KVOp, ResultCode, encode_result
from nexus_raft.kv.limits import Limits
from nexus_raft.kv.service.batch import _fill_write, encode_write
from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc
from tests.kv.kv_double import CLUSTER_ID, double_cluster

LIMITS = Limits(max_value_bytes=64)


def test_put_delete_cas_bytes_match_kvcommand() -> None:
    put = kv_pb2.PutRequest(key=b"a/b", value=b"v", client_id=7, seq=9)
    assert (
        encode_write("put", put, LIMITS, 123)
        == KVCommand(KVOp.PUT, b"a/b", b"v", client_id=7, seq=9, timestamp_ms=123).encode()
    )
    put_empty = kv_pb2.PutRequest(key=b"k", value=b"")
    assert (
        encode_write("put", put_empty, LIMITS, 1)
        == KVCommand(KVOp.PUT, b"k", b"", timestamp_ms=1).encode()
    )
    delete = kv_pb2.DeleteRequest(key=b"k", client_id=1, seq=2)
    assert (
        encode_write("delete", delete, LIMITS, 5)
        == KVCommand(KVOp.DELETE, b"k", client_id=1, seq=2, timestamp_ms=5).encode()
    )
    cases = [
        (kv_pb2.CasRequest(key=b"k", expect_absent=True, new_value=b"n"), (b"n", None, True)),
        (kv_pb2.CasRequest(key=b"k", expected=b"o", new_value=b"n"), (b"n", b"o", False)),
        (kv_pb2.CasRequest(key=b"k", expected=b"o", delete=True), (None, b"o", False)),
        (kv_pb2.CasRequest(key=b"k", expected=b"", new_value=b""), (b"", b"", False)),
    ]
    for req, (new, expected, absent) in cases:
        want = KVCommand(KVOp.CAS, b"k", new, expected, absent, timestamp_ms=3).encode()
        assert encode_write("cas", req, LIMITS, 3) == want
        assert KVCommand.decode(encode_write("cas", req, LIMITS, 3)).value == new


def test_limits_are_checked() -> None:
    with pytest.raises(TooLarge):
        encode_write("put", kv_pb2.PutRequest(key=b"k", value=b"x" * 65), LIMITS, 0)
    with pytest.raises(InvalidArgument):
        encode_write("delete", kv_pb2.DeleteRequest(key=b""), LIMITS, 0)
    with pytest.raises(TooLarge):
        encode_write("cas", kv_pb2.CasRequest(key=b"k", expected=b"x" * 65), LIMITS, 0)


def test_results_fill_the_response() -> None:
    slot = kv_pb2.CasResponse()
    _fill_write(slot, "cas", encode_result(ResultCode.CAS_FAILED, 41, b"old"))
    assert (slot.succeeded, slot.revision, slot.had_prev, slot.prev_value) == (
        False, 41, True, b"old",
    )  # fmt: skip
    slot = kv_pb2.DeleteResponse()
    _fill_write(slot, "delete", encode_result(ResultCode.OK, 42, None))
    assert (slot.deleted, slot.revision, slot.error.code) == (False, 42, kv_pb2.OK)
    slot = kv_pb2.PutResponse()
    _fill_write(slot, "put", encode_result(ResultCode.TOO_LARGE, 1, None, "huge"))
    assert slot.error.code == kv_pb2.TOO_LARGE
    slot = kv_pb2.PutResponse()
    _fill_write(slot, "put", encode_result(ResultCode.STALE, 1, None, "old seq"))
    assert slot.error.code == kv_pb2.INVALID_ARGUMENT and "stale" in slot.error.message
    slot = kv_pb2.PutResponse()
    _fill_write(slot, "put", b"garbage")  # a broken result: as the unary RPCs answer it
    assert slot.error.code == kv_pb2.UNAVAILABLE and "InvalidCommand" in slot.error.message
    slot = kv_pb2.PutResponse()
    _fill_write(slot, "put", TimeoutError("late"))
    assert slot.error.code == kv_pb2.TIMEOUT


def test_a_mixed_batch_answers_every_op_in_its_slot() -> None:
    async def body() -> None:
        async with double_cluster() as c:
            channel = grpc.aio.insecure_channel(c.addresses[1])
            try:
                stub = kv_pb2_grpc.KVStub(channel)
                ops = [
                    kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"a", value=b"1", client_id=5, seq=1)),
                    kv_pb2.BatchOp(put=kv_pb2.PutRequest(key=b"", value=b"bad key")),
                    kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=b"a")),
                    kv_pb2.BatchOp(),
                    kv_pb2.BatchOp(cas=kv_pb2.CasRequest(key=b"z", expected=b"nope", delete=True)),
                    kv_pb2.BatchOp(delete=kv_pb2.DeleteRequest(key=b"gone")),
                    kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=b"\x00", serializable=True)),
                ]
                resp = await stub.Batch(kv_pb2.BatchRequest(cluster_id=CLUSTER_ID, ops=ops))
                r = list(resp.results)
                assert [x.WhichOneof("result") for x in r] == [
                    "put", "put", "get", "put", "cas", "delete", "get",
                ]  # fmt: skip
                assert r[0].put.error.code == kv_pb2.OK and r[0].put.revision == 1
                assert r[1].put.error.code == kv_pb2.INVALID_ARGUMENT
                assert r[2].get.error.code == kv_pb2.OK
                assert r[3].put.error.code == kv_pb2.INVALID_ARGUMENT
                assert r[4].cas.error.code == kv_pb2.OK and not r[4].cas.succeeded
                assert r[5].delete.error.code == kv_pb2.OK and not r[5].delete.deleted
                assert r[6].get.error.code == kv_pb2.INVALID_ARGUMENT
                # The three good writes went out as one entry (a group); the
                # two bad ops never reached the log.
                assert c.cluster.proposals == 1
                assert c.cluster.kv.applied == 3
            finally:
                await channel.close()

    asyncio.run(asyncio.wait_for(body(), timeout=30))
