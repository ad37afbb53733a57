"""Tests of the history recorder: timestamps, outcome classification, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.lin.checker import Verdict, check_history
from tests.lin.history import History, Outcome
from tests.lin.model import OpKind


class _Clock:
    """A fake clock that advances by one on every reading."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += 1
        return self.now


class _Lost(Exception):
    pass


class _Refused(Exception):
    pass


def _classify(exc: BaseException) -> Outcome:
    return Outcome.FAILED if isinstance(exc, _Refused) else Outcome.UNKNOWN


def test_record_stamps_and_classifies() -> None:
    hist = History(clock=_Clock())
    store: dict[str, bytes] = {}

    async def put(value: bytes) -> None:
        store["k"] = value

    async def get() -> bytes | None:
        return store.get("k")

    async def lost() -> None:
        store["k"] = b"lost-but-applied"
        raise _Lost

    async def refused() -> None:
        raise _Refused

    async def main() -> None:
        await hist.record(1, OpKind.PUT, "k", lambda: put(b"a"), value=b"a")
        with pytest.raises(_Lost):
            await hist.record(1, OpKind.PUT, "k", lost, value=b"lost-but-applied")
        with pytest.raises(_Refused):
            await hist.record(1, OpKind.PUT, "k", refused, value=b"z", classify=_classify)
        with pytest.raises(_Refused):
            await hist.record(2, OpKind.GET, "k", refused)
        await hist.record(2, OpKind.GET, "k", get)

    asyncio.run(main())
    ops = hist.operations()
    assert [op.kind for op in ops] == [OpKind.PUT, OpKind.PUT, OpKind.GET]
    assert ops[0].invoke < ops[0].complete  # type: ignore[operator]
    assert ops[1].pending and ops[1].key == b"k"
    assert ops[2].output == b"lost-but-applied"
    assert hist.failed == 2
    # The unknown write explains the read; the refused write is gone.
    assert check_history(ops).verdict is Verdict.LINEARIZABLE


def test_cancelled_call_is_unknown_and_open_calls_close_as_unknown() -> None:
    hist = History(clock=_Clock())

    async def main() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(hist.record(1, OpKind.PUT, b"k", hang, value=b"v"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    handle = hist.invoke(2, OpKind.CAS, b"k", expected=None, value=b"w")
    assert len(hist) == 2
    hist.close()
    ops = hist.operations()
    assert all(op.pending for op in ops)
    with pytest.raises(ValueError, match="not an open call"):
        hist.complete(handle, True)


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    hist = History(clock=_Clock())
    h = hist.invoke(1, OpKind.PUT, b"k\x00", value=b"\xff")
    hist.complete(h)
    h = hist.invoke(2, OpKind.GET, b"k\x00")
    hist.complete(h, b"\xff")
    h = hist.invoke(2, OpKind.CAS, b"k\x00", expected=b"\xff", value=None)
    hist.complete(h, True)
    h = hist.invoke(3, OpKind.DELETE, b"k\x00")
    hist.unknown(h)
    path = tmp_path / "h.jsonl"
    hist.dump(path)
    assert History.load(path) == hist.operations()


def test_wrong_types_are_rejected() -> None:
    hist = History()
    with pytest.raises(TypeError, match="key"):
        hist.invoke(1, OpKind.GET, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kind"):
        hist.invoke(1, "get", b"k")  # type: ignore[arg-type]

    async def weird() -> int:
        return 5

    with pytest.raises(TypeError, match="output"):
        asyncio.run(hist.record(1, OpKind.GET, b"k", weird))
    assert hist.operations()[0].pending
