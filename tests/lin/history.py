"""Record a history of register operations from concurrent asyncio clients.

Every call is stamped with a monotonic invocation time before it is issued
and a completion time after its answer arrives. How a call ended decides what
the checker may assume:

- it answered: the output is recorded and must be explained;
- it failed *definitely* (the caller knows it had no effect, e.g. a read, or
  an error raised before anything was sent): it is dropped;
- anything else (timeout, connection lost, cancelled, the test ended): the
  outcome is unknown; a write may or may not have taken effect.

A single :class:`History` is shared by all clients on one event loop; it is
not thread-safe (asyncio tasks never preempt each other between statements).
"""

from __future__ import annotations

import base64
import enum
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.lin.model import Operation, OpKind

__all__ = ["History", "Outcome"]

T = TypeVar("T")


class Outcome(enum.Enum):
    """How a failed call is classified."""

    FAILED = "failed"  # definitely no effect: the operation is dropped
    UNKNOWN = "unknown"  # may or may not have taken effect


@dataclass(slots=True)
class _Open:
    client: int
    kind: OpKind
    key: bytes
    value: bytes | None
    expected: bytes | None
    invoke: int


def _as_key(key: bytes | str) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return key
    raise TypeError(f"key must be bytes or str, not {type(key).__name__}")


class History:
    """A recorder of operations with invoke/complete timestamps.

    Use :meth:`invoke` + :meth:`complete`/:meth:`fail`/:meth:`unknown`, or
    the :meth:`record` wrapper around an awaitable.
    """

    def __init__(self, *, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._open: dict[int, _Open] = {}
        self._done: list[Operation] = []
        self._next = 0
        self.failed = 0  # calls dropped as definitely failed (for reporting)

    def invoke(
        self,
        client: int,
        kind: OpKind,
        key: bytes | str,
        *,
        value: bytes | None = None,
        expected: bytes | None = None,
    ) -> int:
        """Stamp the start of a call; returns a handle for its ending."""
        if not isinstance(kind, OpKind):
            raise TypeError(f"kind must be OpKind, not {type(kind).__name__}")
        handle = self._next
        self._next += 1
        self._open[handle] = _Open(client, kind, _as_key(key), value, expected, self._clock())
        return handle

    def _take(self, handle: int) -> _Open:
        try:
            return self._open.pop(handle)
        except KeyError:
            raise ValueError(f"handle {handle} is not an open call") from None

    def complete(self, handle: int, output: bytes | bool | None = None) -> None:
        """Stamp the answer of a call with its output (see :class:`Operation`)."""
        now = self._clock()
        o = self._take(handle)
        self._done.append(
            Operation(o.client, o.kind, o.key, o.invoke, now, o.value, o.expected, output)
        )

    def fail(self, handle: int) -> None:
        """The call definitely had no effect: forget it."""
        self._take(handle)
        self.failed += 1

    def unknown(self, handle: int) -> None:
        """The call's outcome is unknown: keep it as pending forever."""
        o = self._take(handle)
        self._done.append(Operation(o.client, o.kind, o.key, o.invoke, None, o.value, o.expected))

    async def record(
        self,
        client: int,
        kind: OpKind,
        key: bytes | str,
        action: Callable[[], Awaitable[T]],
        *,
        value: bytes | None = None,
        expected: bytes | None = None,
        output: Callable[[T], bytes | bool | None] | None = None,
        classify: Callable[[BaseException], Outcome] | None = None,
    ) -> T:
        """Run ``action()`` as one recorded call and return its result.

        ``output`` maps the result to the recorded output (default: the result
        itself). ``classify`` decides whether an exception means FAILED or
        UNKNOWN; by default a read that raised is FAILED and a write UNKNOWN,
        which is always sound. The exception is re-raised.
        """
        handle = self.invoke(client, kind, key, value=value, expected=expected)
        try:
            result = await action()
        except BaseException as exc:
            # Cancellation and other BaseExceptions never reach classify: the
            # call was cut off mid-flight, so only the default rule is sound.
            if classify is not None and isinstance(exc, Exception):
                verdict = classify(exc)
            else:
                verdict = Outcome.FAILED if kind is OpKind.GET else Outcome.UNKNOWN
            if verdict is Outcome.FAILED:
                self.fail(handle)
            else:
                self.unknown(handle)
            raise
        out = output(result) if output is not None else result
        if out is not None and not isinstance(out, (bytes, bool)):
            self.unknown(handle)
            raise TypeError(f"output must be bytes, bool or None, not {type(out).__name__}")
        self.complete(handle, out)
        return result

    def close(self) -> None:
        """Mark every call still open (e.g. cancelled at the end of a run) as unknown."""
        for handle in list(self._open):
            self.unknown(handle)

    def operations(self) -> list[Operation]:
        """Every recorded operation; calls still open are reported as unknown."""
        now_open = [
            Operation(o.client, o.kind, o.key, o.invoke, None, o.value, o.expected)
            for o in self._open.values()
        ]
        return [*self._done, *now_open]

    def __len__(self) -> int:
        return len(self._done) + len(self._open)

    # --- persistence, so a failing run can be replayed through the checker ----

    def dump(self, path: str | Path) -> None:
        """Write the history as JSON lines (bytes are base64)."""
        with open(path, "w", encoding="utf-8") as fh:
            for op in self.operations():
                fh.write(json.dumps(_encode(op)) + "\n")

    @staticmethod
    def load(path: str | Path) -> list[Operation]:
        """Read operations written by :meth:`dump`."""
        with open(path, encoding="utf-8") as fh:
            return [_decode(json.loads(line)) for line in fh if line.strip()]


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _unb64(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


def _encode(op: Operation) -> dict[str, object]:
    out: object = op.output
    if isinstance(out, bytes):
        out = {"b": _b64(out)}
    return {
        "client": op.client,
        "kind": op.kind.value,
        "key": _b64(op.key),
        "invoke": op.invoke,
        "complete": op.complete,
        "value": _b64(op.value),
        "expected": _b64(op.expected),
        "output": out,
    }


def _decode(raw: dict[str, object]) -> Operation:
    out = raw["output"]
    output: bytes | bool | None
    if isinstance(out, dict):
        output = _unb64(out["b"])
    elif isinstance(out, bool) or out is None:
        output = out
    else:
        raise ValueError(f"bad output field {out!r}")
    key = _unb64(raw["key"])  # type: ignore[arg-type]
    assert key is not None
    return Operation(
        client=int(raw["client"]),  # type: ignore[call-overload]
        kind=OpKind(raw["kind"]),
        key=key,
        invoke=int(raw["invoke"]),  # type: ignore[call-overload]
        complete=None if raw["complete"] is None else int(raw["complete"]),  # type: ignore[call-overload]
        value=_unb64(raw["value"]),  # type: ignore[arg-type]
        expected=_unb64(raw["expected"]),  # type: ignore[arg-type]
        output=output,
    )
