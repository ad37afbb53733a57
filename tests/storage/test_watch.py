"""watch_prefix: ordered events for writes made through the store."""

from __future__ import annotations

import threading

import pytest

from nexus_raft.storage import Batch, Event, Store, Subscriber

TIMEOUT = 10.0


def drain(sub: Subscriber) -> list[Event]:
    """Every event already queued (get with timeout 0 never blocks)."""
    out = []
    while (event := sub.get(timeout=0)) is not None:
        out.append(event)
    return out


def test_events_in_write_order_with_prefix_filter(store: Store) -> None:
    t = store.tree("t")
    t.set(b"before", b"0")  # before subscribing: not reported
    sub = t.watch_prefix(b"user/")
    t.set(b"user/1", b"a")
    t.set(b"other", b"x")
    t.set("user/2", bytearray(b"b"))
    t.delete(b"user/1")
    t.compare_and_swap(b"user/3", None, b"c")
    t.compare_and_swap(b"user/3", None, b"lost")  # failed CAS: no event
    t.fetch_and_update(b"user/3", lambda old: None)
    t.update_and_fetch(b"user/4", lambda old: b"d")
    t.set_json(b"user/5", 5)
    assert drain(sub) == [
        (b"user/1", b"a"),
        (b"user/2", b"b"),
        (b"user/1", None),
        (b"user/3", b"c"),
        (b"user/3", None),
        (b"user/4", b"d"),
        (b"user/5", b"5"),
    ]
    assert isinstance(sub.get(timeout=0) or Event(b"", None), Event)
    sub.close()


def test_batches_are_reported_in_batch_order(store: Store) -> None:
    t = store.tree("t")
    other = store.tree("other")
    sub_t, sub_o, sub_d = t.watch_prefix(), other.watch_prefix(b"k"), store.tree().watch_prefix()
    batch = Batch()
    batch.insert(b"k1", b"1")
    batch.insert(b"k1", b"2", tree=other)
    batch.remove(b"k2")
    batch.insert(b"j", b"3", tree="other")
    batch.insert(b"k9", b"4", tree="other")
    t.apply_batch(batch)
    assert drain(sub_t) == [(b"k1", b"1"), (b"k2", None)]
    assert drain(sub_o) == [(b"k1", b"2"), (b"k9", b"4")]
    assert drain(sub_d) == []
    for sub in (sub_t, sub_o, sub_d):
        sub.close()


def test_trees_are_watched_separately(store: Store) -> None:
    a = store.tree("a").watch_prefix()
    store.tree("ab").set(b"k", b"v")
    store.set(b"k", b"v")
    assert a.get(timeout=0) is None
    a.close()


def test_get_timeout_and_pending(store: Store) -> None:
    sub = store.tree().watch_prefix()
    assert sub.get(timeout=0) is None
    assert sub.get(timeout=0.01) is None
    store.set(b"k", b"v")
    assert sub.pending() == 1
    assert sub.get(timeout=TIMEOUT) == (b"k", b"v")
    with pytest.raises(TypeError, match="timeout"):
        sub.get(timeout="1")  # type: ignore[arg-type]
    sub.close()


def test_close_stops_events_and_ends_iteration(store: Store) -> None:
    sub = store.tree().watch_prefix()
    store.set(b"a", b"1")
    sub.close()
    sub.close()  # idempotent
    store.set(b"b", b"2")
    assert sub.closed and "closed" in repr(sub)
    assert list(sub) == [(b"a", b"1")]  # queued before close, then the end


def test_context_manager_closes(store: Store) -> None:
    with store.tree().watch_prefix() as sub:
        store.set(b"a", b"1")
    assert sub.closed


def test_store_close_ends_subscribers(store: Store) -> None:
    sub = store.tree("t").watch_prefix()
    store.close()
    assert sub.closed and list(sub) == []


def test_blocking_iteration_from_another_thread(store: Store) -> None:
    t = store.tree("t")
    sub = t.watch_prefix(b"k")
    received: list[Event] = []

    def consume() -> None:
        for event in sub:  # blocks until events arrive; ends on close
            received.append(event)
            if len(received) == 100:
                sub.close()

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(100):
        t.set(b"k%03d" % i, b"%d" % i)
    consumer.join(TIMEOUT)
    assert not consumer.is_alive()
    assert received == [(b"k%03d" % i, b"%d" % i) for i in range(100)]


def test_concurrent_writers_order_matches_final_state(store: Store) -> None:
    # 8 threads write the same key; the last event a watcher sees must be the
    # value that is actually stored, and each thread's writes stay in order.
    t = store.tree("t")
    sub = t.watch_prefix(b"")
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        for n in range(200):
            t.set(b"shared", b"%d:%03d" % (i, n))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    events = drain(sub)
    assert len(events) == 1600
    assert events[-1].value == t.get(b"shared")
    for i in range(8):
        mine = [e.value for e in events if e.value and e.value.startswith(b"%d:" % i)]
        assert mine == [b"%d:%03d" % (i, n) for n in range(200)]
    sub.close()
