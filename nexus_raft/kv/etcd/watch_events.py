"""Watch events -> etcd WatchResponses: filters, prev_kv, fragmenting.

Kept apart from the servicer so the conversions are testable without a
stream. Fragmenting follows etcd: a response over the size limit with more
than one event is cut into pieces of at most the limit (at least one event
each), all but the last marked ``fragment``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nexus_raft.kv.etcd.ranges import to_kv
from nexus_raft.kv.records import KeyRecord
from nexus_raft.kv.watch_hub import WatchEvent
from nexus_raft.transport._generated.etcd import kv_pb2, rpc_pb2

__all__ = ["MAX_RESPONSE_BYTES", "fragments", "to_event"]

MAX_RESPONSE_BYTES = 3 * 512 * 1024
"""etcd's default ``--max-request-bytes`` (1.5 MiB), the fragment size limit."""

_PUT = kv_pb2.Event.PUT
_DELETE = kv_pb2.Event.DELETE
_NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
_NODELETE = rpc_pb2.WatchCreateRequest.NODELETE


def to_event(event: WatchEvent, prev_kv: bool) -> Any:
    """An ``mvccpb.Event``; a delete's kv holds the key and the deletion revision only."""
    out = kv_pb2.Event()
    if event.value is None:
        out.type = _DELETE
        out.kv.key = event.key
        out.kv.mod_revision = event.revision
    else:
        out.type = _PUT
        out.kv.CopyFrom(
            to_kv(
                event.key,
                KeyRecord(
                    event.value, event.revision, event.create_revision, event.version, event.lease
                ),
            )
        )
    if prev_kv and event.prev is not None:
        out.prev_kv.CopyFrom(to_kv(event.key, event.prev))
    return out


def wanted(event: WatchEvent, filters: frozenset[int]) -> bool:
    """Whether the watch's filters let ``event`` through."""
    if event.value is None:
        return _NODELETE not in filters
    return _NOPUT not in filters


def fragments(response: Any, limit: int = MAX_RESPONSE_BYTES) -> Iterator[Any]:
    """``response`` itself, or its fragments when it is over ``limit`` with several events."""
    if len(response.events) < 2 or response.ByteSize() < limit:
        yield response
        return
    events = list(response.events)
    base = rpc_pb2.WatchResponse()
    base.CopyFrom(response)
    del base.events[:]
    base.fragment = True
    start = 0
    while start < len(events):
        piece = rpc_pb2.WatchResponse()
        piece.CopyFrom(base)
        size = piece.ByteSize()
        stop = start
        while stop < len(events):
            grow = events[stop].ByteSize() + 6  # field tag and length prefix
            if stop > start and size + grow >= limit:
                break
            size += grow
            stop += 1
        piece.events.extend(events[start:stop])
        if stop == len(events):
            piece.fragment = False
        start = stop
        yield piece
