"""etcd's Txn rules, applied by the KV state machine itself (in process, real LevelDB).

Each request goes through what a member does with it: the front end's
checks (:func:`check_txn`), then the etcd command applied by
``KVStateMachine.apply`` and its result decoded, then Range as the KV
service serves it. The expected answers are etcd 3.4's (``applyCompare``,
``checkRequestPut``, ``checkIntervals``, ``--max-txn-ops`` 128).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from nexus_raft.kv.etcd.checks import MAX_TXN_OPS, RequestError, check_txn
from nexus_raft.kv.etcd.command import RESPONSE_TYPES, Code, Kind, decode_result, encode_command
from nexus_raft.kv.etcd.errors import EtcdError, from_code
from nexus_raft.kv.etcd.service_kv import range_response
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store
from nexus_raft.transport._generated.etcd import rpc_pb2

C = rpc_pb2.Compare


class Etcd:
    """One KV state machine driven with etcd commands, as a member applies them."""

    def __init__(self, store: Store) -> None:
        self.sm = KVStateMachine()
        self.sm.open(store)
        self.index = 0

    def run(self, kind: Kind, req: Any) -> Any:
        if kind is Kind.TXN:
            try:
                check_txn(req)
            except RequestError as exc:
                raise EtcdError(exc.name) from None
        self.index += 1
        code, _, payload = decode_result(self.sm.apply(self.index, encode_command(kind, req)))
        if code is not Code.OK:
            raise from_code(code, payload)
        return RESPONSE_TYPES[kind].FromString(payload)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        resp = self.run(Kind.PUT, rpc_pb2.PutRequest(key=key, value=value, lease=lease))
        return int(resp.header.revision)

    def txn(self, compare: list[Any], success: Sequence[Any] = (),
            failure: Sequence[Any] = ()) -> Any:
        return self.run(Kind.TXN, rpc_pb2.TxnRequest(
            compare=compare, success=list(success), failure=list(failure)))

    def get(self, key: bytes, range_end: bytes = b"") -> dict[bytes, Any]:
        resp = range_response(self.sm, rpc_pb2.RangeRequest(key=key, range_end=range_end))
        return {kv.key: kv for kv in resp.kvs}


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    with Store.open(tmp_path / "store") as store:
        e = Etcd(store)
        yield e
        e.sm.close()


def cmp(key: bytes, target: int, result: int, range_end: bytes = b"", **value: Any) -> Any:
    return C(key=key, target=target, result=result, range_end=range_end, **value)


def put(key: bytes, value: bytes = b"v", lease: int = 0) -> Any:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease))


def delete(key: bytes, range_end: bytes = b"") -> Any:
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=range_end))


def get(key: bytes, range_end: bytes = b"") -> Any:
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key, range_end=range_end))


def nested(compare: list[Any], success: list[Any], failure: Sequence[Any] = ()) -> Any:
    return rpc_pb2.RequestOp(request_txn=rpc_pb2.TxnRequest(
        compare=compare, success=success, failure=list(failure)))


def holds(etcd: Etcd, c: Any) -> bool:
    return bool(etcd.txn([c]).succeeded)


def test_compares_on_every_target_and_result(etcd: Etcd) -> None:
    lease = etcd.run(Kind.LEASE_GRANT, rpc_pb2.LeaseGrantRequest(ID=7, TTL=60)).ID
    first = etcd.put(b"a", b"x")
    second = etcd.put(b"a", b"y", lease=lease)
    assert holds(etcd, cmp(b"a", C.VALUE, C.EQUAL, value=b"y"))
    assert not holds(etcd, cmp(b"a", C.VALUE, C.EQUAL, value=b"x"))
    assert holds(etcd, cmp(b"a", C.VALUE, C.GREATER, value=b"x"))  # bytewise
    assert holds(etcd, cmp(b"a", C.VALUE, C.LESS, value=b"z"))
    assert holds(etcd, cmp(b"a", C.VALUE, C.NOT_EQUAL, value=b"x"))
    assert holds(etcd, cmp(b"a", C.VERSION, C.EQUAL, version=2))
    assert holds(etcd, cmp(b"a", C.VERSION, C.GREATER, version=1))
    assert holds(etcd, cmp(b"a", C.CREATE, C.EQUAL, create_revision=first))
    assert holds(etcd, cmp(b"a", C.MOD, C.EQUAL, mod_revision=second))
    assert holds(etcd, cmp(b"a", C.MOD, C.LESS, mod_revision=second + 1))
    assert holds(etcd, cmp(b"a", C.LEASE, C.EQUAL, lease=lease))
    assert not holds(etcd, cmp(b"a", C.LEASE, C.EQUAL, lease=0))


def test_compares_with_range_end_hold_for_every_key_in_the_range(etcd: Etcd) -> None:
    for key in (b"r/1", b"r/2", b"r/3"):
        etcd.put(key, b"same")
    etcd.put(b"s", b"other")  # outside [r/, r0)
    assert holds(etcd, cmp(b"r/", C.VALUE, C.EQUAL, b"r0", value=b"same"))
    assert holds(etcd, cmp(b"r/", C.VERSION, C.EQUAL, b"r0", version=1))
    etcd.put(b"r/2", b"changed")
    assert not holds(etcd, cmp(b"r/", C.VALUE, C.EQUAL, b"r0", value=b"same"))
    assert holds(etcd, cmp(b"r/", C.VERSION, C.GREATER, b"r0", version=0))
    # range_end "\0": every key from "r/" on, "s" included.
    assert not holds(etcd, cmp(b"r/", C.VERSION, C.EQUAL, b"\0", version=1))


def test_a_missing_key_compares_as_zero_but_never_equal_by_value(etcd: Etcd) -> None:
    for c in (cmp(b"nope", C.VERSION, C.EQUAL, version=0),
              cmp(b"nope", C.CREATE, C.EQUAL, create_revision=0),
              cmp(b"nope", C.MOD, C.LESS, mod_revision=1),
              cmp(b"nope", C.LEASE, C.EQUAL, lease=0),
              cmp(b"no/", C.VERSION, C.EQUAL, b"no0", version=0)):
        assert holds(etcd, c), c
    # etcd: a VALUE compare on a missing key always fails, whatever the result.
    for result in (C.EQUAL, C.NOT_EQUAL, C.GREATER, C.LESS):
        assert not holds(etcd, cmp(b"nope", C.VALUE, result, value=b""))


def test_at_most_128_operations_per_branch_and_compares(etcd: Etcd) -> None:
    many = [put(b"k%d" % i) for i in range(MAX_TXN_OPS)]
    assert etcd.txn([], many).succeeded
    for args in (([], [*many, put(b"one-more")]),
                 ([], [], [*many, put(b"one-more")]),
                 ([cmp(b"k", C.VERSION, C.EQUAL, version=0)] * (MAX_TXN_OPS + 1), [])):
        with pytest.raises(EtcdError) as info:
            etcd.txn(*args)  # type: ignore[arg-type]
        assert info.value.message == "etcdserver: too many operations in txn request"


def test_no_key_is_written_twice_in_one_branch(etcd: Etcd) -> None:
    refused = [
        [put(b"d"), put(b"d")],
        [put(b"d/1"), delete(b"d/", b"d0")],
        [put(b"d"), nested([], [put(b"d")])],
        [delete(b"d/", b"d0"), nested([], [], [put(b"d/2")])],
    ]
    for ops in refused:
        with pytest.raises(EtcdError) as info:
            etcd.txn([], ops)
        assert info.value.message == "etcdserver: duplicate key given in txn request", ops
    # Allowed: the same key in the two branches (only one runs), in the two
    # branches of a nested txn, and deleted twice.
    etcd.txn([], [put(b"d")], [put(b"d")])
    etcd.txn([], [nested([], [put(b"d")], [put(b"d")])])
    etcd.txn([], [delete(b"d"), delete(b"d")])
    assert etcd.sm.revision() > 0


def test_a_txn_is_one_revision_and_sees_its_own_writes(etcd: Etcd) -> None:
    base = etcd.put(b"t/0", b"0")
    resp = etcd.txn([cmp(b"t/0", C.VALUE, C.EQUAL, value=b"0")],
                    [put(b"t/1"), put(b"t/2"), delete(b"t/0"), get(b"t/", b"t0")])
    assert resp.succeeded and resp.header.revision == base + 1
    seen = [kv.key for kv in resp.responses[3].response_range.kvs]
    assert seen == [b"t/1", b"t/2"]
    mods = {kv.mod_revision for kv in etcd.get(b"t/", b"t0").values()}
    assert mods == {base + 1}
    # A read-only txn, or one whose delete finds nothing, takes no revision.
    assert etcd.txn([], [get(b"t/1"), delete(b"absent")]).header.revision == base + 1
    assert etcd.sm.revision() == base + 1


def test_a_failing_txn_writes_nothing(etcd: Etcd) -> None:
    base = etcd.put(b"f", b"0")
    with pytest.raises(EtcdError) as info:
        etcd.txn([], [put(b"f", b"1"), put(b"g", lease=12345)])
    assert info.value.message == "etcdserver: requested lease not found"
    with pytest.raises(EtcdError) as info:
        etcd.txn([], [put(b"h"), rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(
            key=b"f", revision=base + 50))])
    assert info.value.message == "etcdserver: mvcc: required revision is a future revision"
    assert etcd.sm.revision() == base
    assert etcd.get(b"f")[b"f"].value == b"0" and not etcd.get(b"g") and not etcd.get(b"h")
