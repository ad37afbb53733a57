"""Watches: history replay, live events, prefix filtering, Compacted, threads, overflow."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.errors import Compacted
from nexus_raft.kv.commands import KVCommand
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.kv.watch_hub import WatchEvent, WatchStream
from nexus_raft.storage import Store


def put(key: str, value: bytes) -> bytes:
    return KVCommand.put(key, value).encode()


def delete(key: str) -> bytes:
    return KVCommand.delete(key).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as s:
        yield s


async def take(stream: WatchStream, n: int, timeout: float = 5.0) -> list[WatchEvent]:
    async def go() -> list[WatchEvent]:
        return [await stream.__anext__() for _ in range(n)]

    return await asyncio.wait_for(go(), timeout)


def short(events: list[WatchEvent]) -> list[tuple[int, bytes, bytes | None]]:
    return [(e.revision, e.key, e.value) for e in events]


def test_replay_then_live_on_the_loop_thread(store: Store) -> None:
    sm = KVStateMachine(store)
    sm.apply_batch([(1, put("a/1", b"x")), (2, put("b/1", b"y")), (3, delete("a/1"))])

    async def main() -> None:
        async with sm.watch("a/", start_revision=1) as stream:
            assert short(await take(stream, 2)) == [(1, b"a/1", b"x"), (3, b"a/1", None)]
            # apply on the event loop thread itself (an embedded node does this)
            sm.apply_batch([(4, put("b/2", b"z")), (5, put("a/2", b"w"))])
            assert short(await take(stream, 1)) == [(5, b"a/2", b"w")]
            waiter = asyncio.ensure_future(take(stream, 1))
            await asyncio.sleep(0)  # the consumer is parked on its future now
            sm.apply(6, put("a/3", b"v"))
            assert short(await waiter) == [(6, b"a/3", b"v")]
        assert stream.closed

    asyncio.run(main())


def test_start_zero_means_only_new_events_and_resume_from_revision(store: Store) -> None:
    sm = KVStateMachine(store)
    sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(1, 6)])

    async def main() -> None:
        stream = sm.watch("k/")
        sm.apply(6, put("k/6", b"v"))
        assert [e.revision for e in await take(stream, 1)] == [6]
        stream.close()
        # A watcher that saw revision 3 resumes from 4 without gaps or repeats.
        resumed = sm.watch("k/", start_revision=4)
        assert [e.revision for e in await take(resumed, 3)] == [4, 5, 6]
        resumed.close()
        with pytest.raises(StopAsyncIteration):
            await resumed.__anext__()

    asyncio.run(main())


def test_history_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.open(path) as store:
        KVStateMachine(store).apply_batch([(i, put("k", b"%d" % i)) for i in range(1, 4)])
    with Store.open(path) as store:
        sm = KVStateMachine(store)

        async def main() -> list[WatchEvent]:
            async with sm.watch("", start_revision=2) as stream:
                return await take(stream, 2)

        assert [e.value for e in asyncio.run(main())] == [b"2", b"3"]


def test_compacted_when_history_was_trimmed(store: Store) -> None:
    sm = KVStateMachine(store, max_events=100)  # trims in steps of 12
    for lo in range(1, 301, 20):
        sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(lo, lo + 20)])
    floor = sm.history_floor()
    assert 1 < floor <= 201
    assert store.tree("kv.events").count() <= 100 + 12
    with pytest.raises(Compacted):
        sm.watch("k/", start_revision=floor - 1)

    async def main() -> list[int]:
        async with sm.watch("k/", start_revision=floor) as stream:
            return [e.revision for e in await take(stream, 3)]

    assert asyncio.run(main()) == [floor, floor + 1, floor + 2]


def test_trimming_starts_at_the_history_floor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seeking to the tree's first key would walk the deletion markers every
    # earlier trim left (LevelDB drops them only at its own compactions).
    sm = KVStateMachine(store, max_events=100)
    for lo in range(1, 201, 20):
        sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(lo, lo + 20)])
    floor = sm.history_floor()
    assert floor > 1
    events = store.tree("kv.events")
    seen: list[bytes | str | None] = []
    real_range = type(events).range

    def spy(self: object, start: bytes | str | None, end: bytes | str | None, **kw: bool) -> object:
        seen.append(start)
        return real_range(self, start, end, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(type(events), "range", spy)
    for lo in range(201, 301, 20):
        sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(lo, lo + 20)])
    assert seen and all(isinstance(s, bytes) and int.from_bytes(s, "big") >= floor for s in seen)
    assert sm.history_floor() > floor
    assert events.count() <= 100 + 12
    assert next(iter(events.iter()))[0] == sm.history_floor().to_bytes(8, "big") + bytes(4)


def test_apply_from_another_thread_delivers_in_order(store: Store) -> None:
    sm = KVStateMachine(store)
    n = 2000

    def writer() -> None:
        for lo in range(1, n + 1, 50):
            sm.apply_batch(
                [
                    (i, put(f"t/{i % 7}" if i % 2 else f"u/{i}", b"%d" % i))
                    for i in range(lo, lo + 50)
                ]
            )

    async def main() -> list[int]:
        stream = sm.watch("t/", start_revision=1)
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            return [e.revision for e in await take(stream, n // 2, timeout=60)]
        finally:
            thread.join()
            stream.close()

    assert asyncio.run(main()) == list(range(1, n + 1, 2))


def test_slow_watcher_falls_back_to_history(store: Store) -> None:
    sm = KVStateMachine(store, watch_buffer=10)

    async def main() -> None:
        stream = sm.watch("k/", start_revision=0)
        sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(1, 101)])  # overflows
        assert [e.revision for e in await take(stream, 100)] == list(range(1, 101))
        stream.close()

    asyncio.run(main())


def test_slow_watcher_gets_compacted_if_history_is_gone(store: Store) -> None:
    sm = KVStateMachine(store, watch_buffer=5, max_events=20)

    async def main() -> None:
        stream = sm.watch("k/", start_revision=0)
        for lo in range(1, 201, 10):
            sm.apply_batch([(i, put(f"k/{i}", b"v")) for i in range(lo, lo + 10)])
        with pytest.raises(Compacted):
            await take(stream, 1)
        stream.close()

    asyncio.run(main())


def test_restore_and_close_end_or_reset_watchers(store: Store, tmp_path: Path) -> None:
    with Store.open(tmp_path / "other") as other:
        src = KVStateMachine(other)
        src.apply_batch([(i, put(f"k/{i}", b"src")) for i in range(1, 31)])
        chunks = list(src.snapshot())
    sm = KVStateMachine(store)
    sm.apply_batch([(i, put(f"k/{i}", b"mine")) for i in range(1, 6)])

    async def main() -> None:
        stream = sm.watch("k/", start_revision=0)
        sm.restore(30, chunks)  # jumps from 5 to 30: the watcher re-reads history
        got = await take(stream, 25)
        assert [e.revision for e in got] == list(range(6, 31))
        assert {e.value for e in got} == {b"src"}
        other_stream = sm.watch("k/")
        sm.close()
        with pytest.raises(StopAsyncIteration):
            await other_stream.__anext__()

    asyncio.run(main())


def test_bad_arguments(store: Store) -> None:
    sm = KVStateMachine(store)
    with pytest.raises(TypeError, match="prefix"):
        sm.watch(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start_revision"):
        sm.watch("a", start_revision="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sm.watch("a", start_revision=-1)


def test_history_is_bounded_by_bytes_too(store: Store) -> None:
    sm = KVStateMachine(store, max_events=1000, max_event_bytes=64 * 1024)
    big = b"x" * 4096
    for lo in range(1, 201, 10):
        sm.apply_batch([(i, put(f"k/{i}", big)) for i in range(lo, lo + 10)])
    stored = sum(len(v) + 8 for _, v in store.tree("kv.events").iter())
    assert stored <= 64 * 1024 + 8 * 1024 + 10 * 4200
    assert sm.history_floor() > 150
    with pytest.raises(Compacted):
        sm.watch("k/", start_revision=1)


def test_a_watch_from_revision_1_on_a_long_history_does_not_stall_the_event_loop(
    store: Store,
) -> None:
    """A narrow watch over a long history that matches nothing: replaying it
    used to scan every stored event in one step, the event loop blocked
    meanwhile. Now the loop runs between stretches of 256 scanned events."""
    sm = KVStateMachine(store)
    n = 8_000
    for start in range(1, n + 1, 4_000):
        sm.apply_batch([(i, put(f"a/{i}", b"x")) for i in range(start, start + 4_000)])

    async def main() -> int:
        turns = 0
        stop = False

        async def other_work() -> None:
            nonlocal turns
            while not stop:
                turns += 1
                await asyncio.sleep(0)

        async with sm.watch("b/", start_revision=1) as stream:
            waiter = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0)  # the replay starts
            work = asyncio.ensure_future(other_work())
            while stream._replay is not None:  # until the history is scanned
                await asyncio.sleep(0)
            scanned_turns = turns
            stop = True
            await work
            sm.apply(n + 1, put("b/1", b"y"))
            event = await asyncio.wait_for(waiter, 10)
            assert (event.revision, event.key) == (n + 1, b"b/1")
        return scanned_turns

    turns = asyncio.run(main())
    # 8,000 events in stretches of 256: the loop ran other work about 31 times.
    assert turns >= n // 256 // 2, f"the loop ran other work only {turns} times"
