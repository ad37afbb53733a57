"""etcd's request checks (what etcd refuses before proposing), shared by front end and apply.

The front end runs them to answer a bad request at once with etcd's error;
the apply side runs them again so that a command that slipped through (or a
corrupt entry) is refused the same way on every replica instead of being
half applied.
"""

from __future__ import annotations

from typing import Any

from nexus_raft.kv.etcd.ranges import key_range

__all__ = ["MAX_TXN_OPS", "RequestError", "check_put", "check_txn", "check_key"]

MAX_TXN_OPS = 128
"""etcd's default ``--max-txn-ops``: the most compares or operations in one branch."""


class RequestError(Exception):
    """A request etcd would refuse; ``name`` is the etcd error (see ``errors.py``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def check_key(key: bytes) -> None:
    """An empty key is refused (``etcdserver: key is not provided``)."""
    if not key:
        raise RequestError("empty_key")


def check_put(req: Any) -> None:
    """PutRequest rules: a key; no value with ignore_value; no lease with ignore_lease."""
    check_key(req.key)
    if req.ignore_value and req.value:
        raise RequestError("value_provided")
    if req.ignore_lease and req.lease:
        raise RequestError("lease_provided")


def _check_op(op: Any, max_ops: int) -> None:
    which = op.WhichOneof("request")
    if which == "request_range":
        check_key(op.request_range.key)
    elif which == "request_put":
        check_put(op.request_put)
    elif which == "request_delete_range":
        check_key(op.request_delete_range.key)
    elif which == "request_txn":
        check_txn(op.request_txn, max_ops)
    else:
        raise RequestError("key_not_found")  # an empty operation, as etcd answers


def check_txn(req: Any, max_ops: int = MAX_TXN_OPS) -> None:
    """TxnRequest rules: operation count, keys present, no key written twice."""
    count = max(len(req.compare), len(req.success), len(req.failure))
    if count > max_ops:
        raise RequestError("too_many_ops")
    for cmp in req.compare:
        check_key(cmp.key)
    for op in (*req.success, *req.failure):
        _check_op(op, max_ops - count)
    _writes(req.success)
    _writes(req.failure)


Interval = tuple[bytes, bytes | None]


def _hits(deletes: list[Interval], key: bytes) -> bool:
    return any(key >= lo and (hi is None or key < hi) for lo, hi in deletes)


def _writes(ops: Any) -> tuple[set[bytes], list[Interval]]:
    """(keys put, ranges deleted) by one branch; RequestError on an overlap.

    etcd's rule: within one branch (nested txns included) a key may be put
    once and not also deleted; the two branches of a nested txn may put the
    same key (only one of them runs).
    """
    deletes: list[Interval] = []
    for op in ops:
        if op.WhichOneof("request") == "request_delete_range":
            d = op.request_delete_range
            deletes.append(key_range(d.key, d.range_end))
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        then_puts, then_dels = _writes(op.request_txn.success)
        else_puts, else_dels = _writes(op.request_txn.failure)
        for key in then_puts:
            if key in puts or _hits(deletes, key):
                raise RequestError("duplicate_key")
            puts.add(key)
        for key in else_puts:
            if (key in puts and key not in then_puts) or _hits(deletes, key):
                raise RequestError("duplicate_key")
            puts.add(key)
        deletes.extend(then_dels)
        deletes.extend(else_dels)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        key = op.request_put.key
        if key in puts or _hits(deletes, key):
            raise RequestError("duplicate_key")
        puts.add(key)
    return puts, deletes
