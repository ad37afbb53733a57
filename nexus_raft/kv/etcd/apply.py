"""What an etcd command does to the MVCC state: Put, DeleteRange, Txn, Compact, leases.

:func:`apply_etcd` runs one command (:mod:`~nexus_raft.kv.etcd.command`)
against an apply pass's :class:`~nexus_raft.kv.mvcc.WriteSet`, following
etcd 3.4's apply rules:

* a command is one transaction: all its changes share one main revision,
  and one that changes nothing (a read-only txn, a delete of nothing) takes
  none;
* a Txn evaluates its compares (nested ones included) on the state before
  it, then checks its chosen operations (leases exist, ``ignore_value`` keys
  exist, values fit, read revisions are retained) *before* writing, so a
  failing Txn writes nothing; ranges inside it see its earlier writes;
* a missing key compares as a key with every field zero, except that a
  VALUE compare on a missing key always fails;
* revoking a lease deletes its keys in one transaction.

Failures become an error result with a :class:`~nexus_raft.kv.etcd.command.Code`;
nothing raises, so a bad entry cannot stop the apply loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nexus_raft.errors import InvalidCommand
from nexus_raft.kv.etcd.checks import RequestError, check_key, check_put, check_txn
from nexus_raft.kv.etcd.command import ETCD_MAGIC, Code, Kind, decode_command, encode_result
from nexus_raft.kv.etcd.ranges import key_range, run_range, state_at, to_kv
from nexus_raft.kv.mvcc import WriteSet
from nexus_raft.kv.records import KeyRecord
from nexus_raft.transport._generated.etcd import rpc_pb2

__all__ = ["ETCD_MAGIC", "apply_etcd"]

_Compare = rpc_pb2.Compare


class _Fail(Exception):
    def __init__(self, code: Code, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code


def apply_etcd(ws: WriteSet, raw: bytes, max_value_bytes: int) -> bytes:
    """Apply one encoded etcd command; its encoded result."""
    try:
        kind, req = decode_command(raw)
    except InvalidCommand as exc:
        return encode_result(Code.MALFORMED, ws.revision, str(exc).encode())
    try:
        resp = _HANDLERS[kind](ws, req, max_value_bytes)
    except _Fail as exc:
        return encode_result(exc.code, ws.revision, str(exc).encode())
    except RequestError as exc:
        return encode_result(Code.INVALID, ws.revision, exc.name.encode())
    return encode_result(Code.OK, ws.revision, resp.SerializeToString())


# --- checks before writing -------------------------------------------------------------


def _precheck_put(ws: WriteSet, req: Any, max_value: int) -> None:
    if (req.ignore_value or req.ignore_lease) and ws.get(req.key) is None:
        raise _Fail(Code.KEY_NOT_FOUND)
    if req.lease and ws.lease_ttl(req.lease) is None:
        raise _Fail(Code.LEASE_NOT_FOUND)
    if len(req.value) > max_value:
        raise _Fail(Code.TOO_LARGE, f"value is {len(req.value)} bytes, the limit is {max_value}")


def _precheck_range(ws: WriteSet, req: Any) -> None:
    current = ws.revision + (1 if ws.wrote else 0)
    if req.revision > current:
        raise _Fail(Code.FUTURE_REV)
    if 0 < req.revision < ws.read_floor:
        raise _Fail(Code.COMPACTED)


def _precheck_ops(ws: WriteSet, ops: Any, path: Iterator[bool], max_value: int) -> None:
    for op in ops:
        which = op.WhichOneof("request")
        if which == "request_put":
            _precheck_put(ws, op.request_put, max_value)
        elif which == "request_range":
            _precheck_range(ws, op.request_range)
        elif which == "request_txn":
            inner = op.request_txn
            chosen = inner.success if next(path) else inner.failure
            _precheck_ops(ws, chosen, path, max_value)


# --- operations -------------------------------------------------------------------------


def _put(ws: WriteSet, req: Any) -> Any:
    prev = ws.get(req.key)
    value = prev.value if req.ignore_value and prev is not None else req.value
    lease = prev.lease if req.ignore_lease and prev is not None else req.lease
    ws.put(req.key, value, lease, prev)
    resp = rpc_pb2.PutResponse()
    resp.header.revision = ws.pending_revision
    if req.prev_kv and prev is not None:
        resp.prev_kv.CopyFrom(to_kv(req.key, prev))
    return resp


def _delete(ws: WriteSet, req: Any) -> Any:
    start, end = key_range(req.key, req.range_end)
    doomed = list(ws.range_keys(start, end))
    for key, rec in doomed:
        ws.delete(key, rec)
    resp = rpc_pb2.DeleteRangeResponse(deleted=len(doomed))
    resp.header.revision = ws.pending_revision if doomed else ws.revision
    if req.prev_kv:
        resp.prev_kvs.extend(to_kv(k, rec) for k, rec in doomed)
    return resp


def _range(ws: WriteSet, req: Any) -> Any:
    start, end = key_range(req.key, req.range_end)
    current = ws.revision + (1 if ws.wrote else 0)
    resp = rpc_pb2.RangeResponse()
    resp.header.revision = current
    if req.revision <= 0 or req.revision >= current:
        return run_range(ws.range_keys(start, end), req, resp)
    past = state_at(ws.range_keys(start, end), ws.changes_after(req.revision), start, end)
    return run_range(iter(past), req, resp)


def _compare_one(c: Any, rec: KeyRecord | None) -> bool:
    target = c.target
    if target == _Compare.VALUE:
        mine: Any = rec.value if rec is not None else b""
        theirs: Any = c.value
    elif target == _Compare.CREATE:
        mine, theirs = (rec.create if rec else 0), c.create_revision
    elif target == _Compare.MOD:
        mine, theirs = (rec.mod if rec else 0), c.mod_revision
    elif target == _Compare.VERSION:
        mine, theirs = (rec.version if rec else 0), c.version
    else:  # LEASE
        mine, theirs = (rec.lease if rec else 0), c.lease
    result = c.result
    if result == _Compare.EQUAL:
        return bool(mine == theirs)
    if result == _Compare.NOT_EQUAL:
        return bool(mine != theirs)
    if result == _Compare.GREATER:
        return bool(mine > theirs)
    return bool(mine < theirs)


def _compare(ws: WriteSet, c: Any) -> bool:
    start, end = key_range(c.key, c.range_end)
    records = [rec for _, rec in ws.range_keys(start, end)]
    if not records:
        # A missing key has every field zero, but no value to compare.
        return c.target != _Compare.VALUE and _compare_one(c, None)
    return all(_compare_one(c, rec) for rec in records)


def _path(ws: WriteSet, req: Any, out: list[bool]) -> None:
    """Compare outcomes of ``req`` and its chosen nested txns, in pre-order."""
    ok = all(_compare(ws, c) for c in req.compare)
    out.append(ok)
    for op in req.success if ok else req.failure:
        if op.WhichOneof("request") == "request_txn":
            _path(ws, op.request_txn, out)


def _run_ops(ws: WriteSet, req: Any, path: Iterator[bool]) -> Any:
    ok = next(path)
    resp = rpc_pb2.TxnResponse(succeeded=ok)
    for op in req.success if ok else req.failure:
        which = op.WhichOneof("request")
        out = resp.responses.add()
        if which == "request_range":
            out.response_range.CopyFrom(_range(ws, op.request_range))
        elif which == "request_put":
            out.response_put.CopyFrom(_put(ws, op.request_put))
        elif which == "request_delete_range":
            out.response_delete_range.CopyFrom(_delete(ws, op.request_delete_range))
        else:
            out.response_txn.CopyFrom(_run_ops(ws, op.request_txn, path))
    return resp


# --- commands ---------------------------------------------------------------------------


def _cmd_put(ws: WriteSet, req: Any, max_value: int) -> Any:
    check_put(req)
    _precheck_put(ws, req, max_value)
    ws.begin()
    resp = _put(ws, req)
    ws.end()
    resp.header.revision = ws.revision
    return resp


def _cmd_delete(ws: WriteSet, req: Any, max_value: int) -> Any:
    check_key(req.key)
    ws.begin()
    resp = _delete(ws, req)
    ws.end()
    resp.header.revision = ws.revision
    return resp


def _cmd_txn(ws: WriteSet, req: Any, max_value: int) -> Any:
    check_txn(req)
    path: list[bool] = []
    _path(ws, req, path)
    chosen = req.success if path[0] else req.failure
    _precheck_ops(ws, chosen, iter(path[1:]), max_value)
    ws.begin()
    resp = _run_ops(ws, req, iter(path))
    ws.end()
    resp.header.revision = ws.revision
    return resp


def _cmd_compact(ws: WriteSet, req: Any, max_value: int) -> Any:
    rev = req.revision
    if rev <= ws.compacted:
        raise _Fail(Code.COMPACTED)
    if rev > ws.revision:
        raise _Fail(Code.FUTURE_REV)
    ws.compact(rev)
    resp = rpc_pb2.CompactionResponse()
    resp.header.revision = ws.revision
    return resp


_MAX_LEASE_TTL = 9_000_000_000


def _cmd_grant(ws: WriteSet, req: Any, max_value: int) -> Any:
    if req.ID <= 0 or not 0 < req.TTL <= _MAX_LEASE_TTL:
        raise _Fail(Code.INVALID, "a lease needs a positive ID and TTL")
    if ws.lease_ttl(req.ID) is not None:
        raise _Fail(Code.LEASE_EXISTS)
    ws.grant_lease(req.ID, req.TTL)
    resp = rpc_pb2.LeaseGrantResponse(ID=req.ID, TTL=req.TTL)
    resp.header.revision = ws.revision
    return resp


def _cmd_revoke(ws: WriteSet, req: Any, max_value: int) -> Any:
    if ws.lease_ttl(req.ID) is None:
        raise _Fail(Code.LEASE_NOT_FOUND)
    ws.begin()
    for key in ws.lease_keys(req.ID):
        rec = ws.get(key)
        if rec is not None:
            ws.delete(key, rec)
    ws.revoke_lease(req.ID)
    ws.end()
    resp = rpc_pb2.LeaseRevokeResponse()
    resp.header.revision = ws.revision
    return resp


_HANDLERS = {
    Kind.PUT: _cmd_put,
    Kind.DELETE_RANGE: _cmd_delete,
    Kind.TXN: _cmd_txn,
    Kind.COMPACT: _cmd_compact,
    Kind.LEASE_GRANT: _cmd_grant,
    Kind.LEASE_REVOKE: _cmd_revoke,
}
