"""The ``Batch`` RPC's work: many KV operations, one proposal group, one read barrier.

A client coalesces hundreds of concurrent calls into one ``Batch``; the cost
per operation is what bounds a busy node, so this path avoids per-operation
tasks, futures, timers, closures and message constructors:

* every write is checked and encoded straight from its request message, then
  all of them are proposed as ONE log entry (a command group, see
  :mod:`nexus_raft.kv.commands`; several groups only past 4 MiB): one entry
  to encode, replicate, persist and apply, one future and one timer;
* all linearizable gets share one ``read_index`` started alongside;
* results are written into one ``BatchResponse`` in place (``results.add()``
  and field sets, several times cheaper than building sub-messages).

Commands and results use the binary layouts of
:mod:`nexus_raft.kv.commands` (its struct formats are imported, not
copied; ``tests/kv/test_service_batch.py`` checks that the bytes built
here decode to the same command ``KVCommand.encode`` would produce).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from nexus_raft.errors import (
    InvalidArgument,
    InvalidCommand,
    NexusRaftError,
    NotLeader,
    TooLarge,
    Unavailable,
)
from nexus_raft.kv.commands import (
    _CMD,
    _CMD_MAGIC,
    _F_EXPECT_ABSENT,
    _F_EXPECTED,
    _F_PREV,
    _F_VALUE,
    _RES,
    _RES_MAGIC,
    KVOp,
    ResultCode,
    encode_group,
    split_group_result,
)
from nexus_raft.kv.limits import Limits
from nexus_raft.kv.service.base import ServedNode, log_failure
from nexus_raft.kv.wire import error_from_exception, kv_pb2

__all__ = ["MAX_RESPONSE_BYTES", "encode_write", "run_batch"]

# Gets answer values up to 1 MiB each: a batch of them could exceed what one
# gRPC message may carry. Past this budget, gets are answered UNAVAILABLE
# (retryable) and the client sends them again in a later batch; the first
# result always fits, so every batch makes progress.
MAX_RESPONSE_BYTES = 8 << 20

# The writes of a batch are proposed as groups of at most this many bytes
# (one log entry each; a node refuses proposals over 8 MiB by default).
GROUP_MAX_BYTES = 4 << 20

_PUT, _DELETE, _CAS = int(KVOp.PUT), int(KVOp.DELETE), int(KVOp.CAS)
_CMD_PACK = _CMD.pack
_RES_UNPACK = _RES.unpack_from
_RES_SIZE = _RES.size
_OK, _CAS_FAILED, _TOO_LARGE = (
    int(ResultCode.OK),
    int(ResultCode.CAS_FAILED),
    int(ResultCode.TOO_LARGE),
)
_CODE_NAMES = {int(c): c.name.lower() for c in ResultCode}


def now_ms() -> int:
    """Wall clock in ms: it only feeds session expiry and travels in the entry."""
    return int(time.time() * 1000)


def encode_write(kind: str, req: Any, limits: Limits, timestamp_ms: int) -> bytes:
    """The log command for a put/delete/cas request (raises InvalidArgument/TooLarge).

    Same bytes as ``KVCommand(...).encode()`` for the same fields; the
    request's types are fixed by protobuf, so only the limits need checking.
    """
    key = limits.check_key(req.key)
    if kind == "put":
        value = limits.check_value(req.value)
        head = _CMD_PACK(
            _CMD_MAGIC, _PUT, _F_VALUE, req.client_id, req.seq, timestamp_ms,
            len(key), len(value), 0,
        )  # fmt: skip
        return head + key + value
    if kind == "delete":
        head = _CMD_PACK(
            _CMD_MAGIC, _DELETE, 0, req.client_id, req.seq, timestamp_ms, len(key), 0, 0
        )
        return head + key
    # cas
    flags = 0
    expected = b""
    if req.expect_absent:
        flags |= _F_EXPECT_ABSENT
    else:
        expected = limits.check_value(req.expected)
        flags |= _F_EXPECTED
    new = b""
    if not req.delete:
        new = limits.check_value(req.new_value)
        flags |= _F_VALUE
    head = _CMD_PACK(
        _CMD_MAGIC, _CAS, flags, req.client_id, req.seq, timestamp_ms,
        len(key), len(new), len(expected),
    )  # fmt: skip
    return b"".join((head, key, new, expected))


def _decode_result(raw: bytes) -> tuple[int, int, bytes | None, str]:
    """(code, revision, prev value or None, error text) of an encoded KV result."""
    if len(raw) < _RES_SIZE:
        raise InvalidCommand("result shorter than its header")
    magic, code, flags, revision, plen, elen = _RES_UNPACK(raw)
    if magic != _RES_MAGIC or plen + elen != len(raw) - _RES_SIZE:
        raise InvalidCommand("malformed result")
    if code not in _CODE_NAMES:
        raise InvalidCommand(f"unknown result code {code}")
    prev = raw[_RES_SIZE : _RES_SIZE + plen] if flags & _F_PREV else None
    error = raw[_RES_SIZE + plen :].decode("utf-8", errors="replace") if elen else ""
    return code, revision, prev, error


def _fill_write(slot: Any, kind: str, outcome: bytes | BaseException) -> None:
    """Write one write's outcome into its (already selected) response message."""
    if isinstance(outcome, bytes):
        try:
            code, revision, prev, error = _decode_result(outcome)
        except InvalidCommand as exc:
            outcome = exc
        else:
            if code in (_OK, _CAS_FAILED):
                slot.revision = revision
                if kind == "cas":
                    slot.succeeded = code == _OK
                    slot.had_prev = prev is not None
                elif kind == "put":
                    slot.had_prev = prev is not None
                else:
                    slot.deleted = prev is not None
                if prev:
                    slot.prev_value = prev
                return
            if code == _TOO_LARGE:
                outcome = TooLarge(error or "value too large")
            else:
                # INVALID / STALE / ALREADY_APPLIED: the command took no
                # effect and a retry would not change that.
                outcome = InvalidArgument(f"{_CODE_NAMES[code]}: {error}".rstrip(": "))
    slot.error.CopyFrom(error_from_exception(outcome))


def _pack(commands: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """(payload, commands in it): consecutive commands grouped up to ``GROUP_MAX_BYTES``.

    A lone command is proposed as it is (no group header).
    """
    packed: list[tuple[bytes, int]] = []
    run: list[bytes] = []
    size = 0
    for command in commands:
        if run and size + len(command) > GROUP_MAX_BYTES:
            packed.append((encode_group(run) if len(run) > 1 else run[0], len(run)))
            run, size = [], 0
        run.append(command)
        size += len(command) + 4
    if run:
        packed.append((encode_group(run) if len(run) > 1 else run[0], len(run)))
    return packed


async def _propose(
    node: ServedNode, commands: Sequence[bytes], budget: float, forward: bool
) -> Sequence[bytes | BaseException] | BaseException:
    """One outcome per command; the batch's writes travel as one log entry (a group)."""
    packed = _pack(commands)
    try:
        outcomes = await node.propose_many([p for p, _ in packed], timeout=budget, forward=forward)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log_failure(exc)
        return exc
    if len(packed) == len(commands):
        return outcomes
    flat: list[bytes | BaseException] = []
    for (_, count), outcome in zip(packed, outcomes, strict=True):
        if count == 1:
            flat.append(outcome)
            continue
        if isinstance(outcome, bytes):
            try:
                parts = split_group_result(outcome)
                if len(parts) != count:
                    raise InvalidCommand(f"group of {count} answered with {len(parts)} results")
            except InvalidCommand as exc:
                log_failure(exc)
                flat.extend([exc] * count)
            else:
                flat.extend(parts)
        else:
            flat.extend([outcome] * count)
    return flat


async def _barrier(node: ServedNode, budget: float) -> BaseException | None:
    try:
        await node.read_index(timeout=budget)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log_failure(exc)
        return exc
    return None


async def run_batch(
    node: ServedNode,
    sm: Any,
    ops: Sequence[Any],
    limits: Limits,
    budget: float,
    *,
    timestamp_ms: int | None = None,
    forward: bool = False,
) -> Any:
    """Execute ``ops`` (``kv_pb2.BatchOp``) and return the ``BatchResponse``.

    Writes are proposed together (``forward``: through the leader when this
    node is a follower); linearizable gets wait for one shared read
    index (taken concurrently with the writes: the operations of one batch
    are concurrent, so no order among them is promised). ``results[i]``
    answers ``ops[i]``; every failure is that result's ``error``. Writes
    carry ``timestamp_ms`` (default: the wall clock now) for session expiry.
    """
    kinds = [op.WhichOneof("op") for op in ops]
    timestamp = now_ms() if timestamp_ms is None else timestamp_ms
    commands: list[bytes] = []
    write_slots: list[int] = []
    early: dict[int, BaseException] = {}
    need_barrier = False
    for i, kind in enumerate(kinds):
        if kind == "get":
            if not ops[i].get.serializable:
                need_barrier = True
        elif kind is not None:
            try:
                commands.append(encode_write(kind, getattr(ops[i], kind), limits, timestamp))
            except NexusRaftError as exc:
                log_failure(exc)
                early[i] = exc
            else:
                write_slots.append(i)
    barrier: asyncio.Task[BaseException | None] | None = None
    if need_barrier:
        barrier = asyncio.ensure_future(_barrier(node, budget))
    try:
        outcomes: Sequence[bytes | BaseException] | BaseException = ()
        if commands:
            outcomes = await _propose(node, commands, budget, forward)
        barrier_error = await barrier if barrier is not None else None
    finally:
        if barrier is not None and not barrier.done():
            barrier.cancel()
    if isinstance(outcomes, NotLeader):
        # Nothing was proposed (no leader to take it): refuse the batch as a
        # whole so the client re-sends it in one piece, reads included.
        return kv_pb2.BatchResponse(error=error_from_exception(outcomes))
    by_slot: dict[int, bytes | BaseException] = {}
    if isinstance(outcomes, BaseException):
        by_slot = dict.fromkeys(write_slots, outcomes)
    else:
        by_slot = dict(zip(write_slots, outcomes, strict=True))
    resp = kv_pb2.BatchResponse()
    add = resp.results.add
    total = 0
    for i, kind in enumerate(kinds):
        result = add()
        if kind == "get":
            total += _fill_get(result.get, ops[i].get, sm, limits, barrier_error, i, total)
        elif kind is None:
            # An empty oneof: answer an error in the put slot so results stay aligned.
            bad = InvalidArgument("batch operation has no put/delete/cas/get set")
            result.put.error.CopyFrom(error_from_exception(bad))
        else:
            slot = getattr(result, kind)
            slot.SetInParent()
            outcome = early.get(i) or by_slot[i]
            _fill_write(slot, kind, outcome)
            if isinstance(outcome, bytes):
                total += len(outcome)
    return resp


def _fill_get(
    slot: Any, req: Any, sm: Any, limits: Limits, barrier_error: BaseException | None,
    position: int, total: int,
) -> int:  # fmt: skip
    """Answer one get into ``slot``; returns the bytes it added to the response."""
    slot.SetInParent()
    if not req.serializable and barrier_error is not None:
        slot.error.CopyFrom(error_from_exception(barrier_error))  # logged once, by _barrier
        return 0
    try:
        key = limits.check_key(req.key)
        value, revision = sm.get(key)
    except Exception as exc:
        log_failure(exc)
        slot.error.CopyFrom(error_from_exception(exc))
        return 0
    size = len(value) + len(key) + 16 if value is not None else 16
    if position > 0 and total + size > MAX_RESPONSE_BYTES:
        full = Unavailable("batch response is full; send this get again")
        slot.error.CopyFrom(error_from_exception(full))
        return 0
    slot.revision = revision
    if value is not None:
        slot.found = True
        slot.value = value
    return size
