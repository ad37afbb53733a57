"""etcd's key ranges and Range semantics over any ordered source of records.

Used at apply time (ranges inside a Txn, over the pass's pending writes) and
at read time (the Range RPC, over the store), so both follow one set of
rules:

* ``range_end`` empty: the single key ``key``; ``b"\\0"``: every key >= ``key``;
  otherwise ``[key, range_end)`` (empty when ``range_end <= key``);
* ``count`` is the number of keys in the range (before ``limit`` and the
  min/max revision filters, as etcd counts); ``more`` says ``limit`` cut
  the answer short;
* ``sort_target`` other than KEY with ``sort_order`` NONE sorts ascending;
  ``keys_only`` drops values, ``count_only`` returns no keys.

A read at a past revision ``R`` starts from the current records and undoes
every later change (each event carries the key's previous state); see
:func:`state_at`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from nexus_raft.kv.records import KeyRecord
from nexus_raft.transport._generated.etcd import kv_pb2, rpc_pb2

__all__ = ["key_range", "in_range", "run_range", "state_at", "to_kv"]

Item = tuple[bytes, KeyRecord]

_ASCEND = rpc_pb2.RangeRequest.ASCEND
_DESCEND = rpc_pb2.RangeRequest.DESCEND
_NONE = rpc_pb2.RangeRequest.NONE
_SORT_KEYS: dict[int, Any] = {
    rpc_pb2.RangeRequest.KEY: lambda item: item[0],
    rpc_pb2.RangeRequest.VERSION: lambda item: item[1].version,
    rpc_pb2.RangeRequest.CREATE: lambda item: item[1].create,
    rpc_pb2.RangeRequest.MOD: lambda item: item[1].mod,
    rpc_pb2.RangeRequest.VALUE: lambda item: item[1].value,
}


def key_range(key: bytes, range_end: bytes) -> tuple[bytes, bytes | None]:
    """``(start, end)`` of etcd's ``key``/``range_end`` pair (end None: unbounded)."""
    if not range_end:
        return key, key + b"\x00"
    if range_end == b"\x00":
        return key, None
    return key, range_end


def in_range(key: bytes, start: bytes, end: bytes | None) -> bool:
    """Whether ``key`` is in ``[start, end)``."""
    return key >= start and (end is None or key < end)


def to_kv(key: bytes, rec: KeyRecord, keys_only: bool = False) -> Any:
    """An ``mvccpb.KeyValue`` for ``key``'s record."""
    return kv_pb2.KeyValue(
        key=key,
        create_revision=rec.create,
        mod_revision=rec.mod,
        version=rec.version,
        value=b"" if keys_only else rec.value,
        lease=rec.lease,
    )


def state_at(
    current: Iterable[Item],
    later: Iterable[tuple[bytes, KeyRecord | None]],
    start: bytes,
    end: bytes | None,
) -> list[Item]:
    """The records of ``[start, end)`` as of an earlier revision, in key order.

    ``current``: (key, record) now, in key order; ``later``: (key, state
    before the change) for every change after that revision, oldest first.
    The first later change of a key holds its state at the revision.
    """
    state = dict(current)
    seen: set[bytes] = set()
    for key, prev in later:
        if key in seen or not in_range(key, start, end):
            continue
        seen.add(key)
        if prev is None:
            state.pop(key, None)
        else:
            state[key] = prev
    return sorted(state.items())


def _filtered(req: Any) -> bool:
    return bool(
        req.min_mod_revision
        or req.max_mod_revision
        or req.min_create_revision
        or req.max_create_revision
    )


def _keep(req: Any, rec: KeyRecord) -> bool:
    if req.max_mod_revision and rec.mod > req.max_mod_revision:
        return False
    if req.min_mod_revision and rec.mod < req.min_mod_revision:
        return False
    if req.max_create_revision and rec.create > req.max_create_revision:
        return False
    return not (req.min_create_revision and rec.create < req.min_create_revision)


def run_range(items: Iterator[Item], req: Any, response: Any) -> Any:
    """Fill ``response`` (a RangeResponse) from ``items``, the range's records in key order."""
    limit = req.limit if req.limit > 0 else 0
    order = req.sort_order
    if req.sort_target != rpc_pb2.RangeRequest.KEY and order == _NONE:
        order = _ASCEND
    if req.count_only:
        response.count = sum(1 for _ in items)
        return response
    keep_all = order != _NONE or _filtered(req)
    kept: list[Item] = []
    count = 0
    for item in items:
        count += 1
        if keep_all or not limit or len(kept) <= limit:
            kept.append(item)
    if _filtered(req):
        kept = [item for item in kept if _keep(req, item[1])]
    if order != _NONE:
        by = _SORT_KEYS.get(req.sort_target, _SORT_KEYS[rpc_pb2.RangeRequest.KEY])
        # Ties keep key order (etcd's sort is not stable; any order is valid).
        kept.sort(key=by, reverse=order == _DESCEND)
    if limit and len(kept) > limit:
        kept = kept[:limit]
        response.more = True
    response.count = count
    response.kvs.extend(to_kv(k, rec, req.keys_only) for k, rec in kept)
    return response
