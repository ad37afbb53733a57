"""Client sessions: retries answer the stored result; bounded, deterministic table."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.kv.commands import KVCommand, KVResult, ResultCode
from nexus_raft.kv.sessions import SessionTable, Verdict
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store


def put(key: str, value: bytes, client: int, seq: int, ts: int = 1_000) -> bytes:
    return KVCommand.put(key, value, client_id=client, seq=seq, timestamp_ms=ts).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as s:
        yield s


def test_retry_returns_stored_result_without_reapplying(store: Store) -> None:
    sm = KVStateMachine(store)
    first = sm.apply(1, put("k", b"v1", client=7, seq=1))
    sm.apply(2, put("k", b"other", client=8, seq=1))
    retry = sm.apply(3, put("k", b"v1", client=7, seq=1))  # a retried proposal, new index
    assert retry == first
    assert sm.get("k") == (b"other", 2)  # not applied again
    cas = KVCommand.cas("k", b"other", b"v2", client_id=7, seq=2, timestamp_ms=1).encode()
    r1 = sm.apply(4, cas)
    sm.apply(5, put("k", b"changed", client=8, seq=2))
    assert sm.apply(6, cas) == r1 and KVResult.decode(r1).ok  # same answer, CAS not re-run
    assert sm.get("k") == (b"changed", 4)  # revisions count changes, not log indexes


def test_older_seq_is_stale_and_client_zero_is_never_deduplicated(store: Store) -> None:
    sm = KVStateMachine(store)
    sm.apply(1, put("k", b"a", client=1, seq=5))
    r = KVResult.decode(sm.apply(2, put("k", b"b", client=1, seq=4)))
    assert (r.ok, r.code) == (False, ResultCode.STALE)
    assert sm.get("k") == (b"a", 1)
    r = KVResult.decode(sm.apply(3, put("k", b"c", client=1, seq=0)))
    assert r.code is ResultCode.INVALID
    anon = KVCommand.put("n", b"x").encode()
    sm.apply(4, anon)
    sm.apply(5, anon)
    assert sm.get("n") == (b"x", 3)


def test_sessions_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store.open(path) as store:
        sm = KVStateMachine(store)
        first = sm.apply(1, put("k", b"v", client=3, seq=9))
    with Store.open(path) as store:
        sm = KVStateMachine(store)
        assert sm.apply(2, put("k", b"v", client=3, seq=9)) == first
        assert sm.applied_index() == 2 and sm.get("k") == (b"v", 1)


def test_lru_eviction_by_last_applied_write(store: Store) -> None:
    sm = KVStateMachine(store, max_sessions=3)
    for i, client in enumerate([1, 2, 3], start=1):
        sm.apply(i, put(f"k{client}", b"v", client=client, seq=1))
    sm.apply(4, put("k1", b"w", client=1, seq=2))  # client 1 is now most recent
    sm.apply(5, put("k4", b"v", client=4, seq=1))  # evicts client 2 (least recent)
    assert sorted(k for k, _ in store.tree("kv.sessions").iter()) == [
        c.to_bytes(8, "big") for c in (1, 3, 4)
    ]
    # Client 2's retry is now treated as new: at-most-once ends with its session.
    r = KVResult.decode(sm.apply(6, put("k2", b"again", client=2, seq=1)))
    assert r.ok and r.revision == 6


def test_expiry_uses_command_timestamps(store: Store) -> None:
    sm = KVStateMachine(store, session_ttl_ms=10_000)
    # Index gaps as large as the time gaps (1 ms per index): log time follows
    # the leaders' clocks, so expiry is by their timestamps.
    sm.apply(1_000, put("a", b"1", client=1, seq=1, ts=1_000))
    sm.apply(5_000, put("b", b"1", client=2, seq=1, ts=5_000))
    sm.apply(11_500, put("c", b"1", client=3, seq=1, ts=11_500))  # client 1 idle 10.5 s
    assert 1 not in _clients(store) and {2, 3} <= _clients(store)
    r = KVResult.decode(sm.apply(11_600, put("a", b"2", client=1, seq=1, ts=11_600)))
    assert r.ok and sm.get("a") == (b"2", 4)  # the fourth change


def test_leader_clock_jump_does_not_expire_a_session_mid_retry(store: Store) -> None:
    """A leader's clock jumps forward by more than the TTL while a client retries.

    Client 1's put is applied but its answer is lost; client 2 then writes the
    same key; the leader's clock steps forward by two hours; client 1 retries
    its put (same session, same seq). Expiring by the leader's clock dropped
    client 1's session first, so the retry applied again and overwrote client
    2's acknowledged write. Log time advances at most 1 ms per log index, so
    the session is still there and the retry is answered from it.
    """
    sm = KVStateMachine(store, session_ttl_ms=3_600_000)
    t0 = 1_700_000_000_000
    first = sm.apply(1, put("k", b"from-1", client=1, seq=1, ts=t0))
    sm.apply(2, put("k", b"from-2", client=2, seq=1, ts=t0 + 5))
    jumped = t0 + 2 * 3_600_000
    retry = sm.apply(3, put("k", b"from-1", client=1, seq=1, ts=jumped))
    assert retry == first  # the stored answer, not a second application
    assert sm.get("k") == (b"from-2", 2)
    assert {1, 2} <= _clients(store)
    # The clock still moves: ttl / 1 ms = 3.6 million entries later, it has expired.
    sm.apply(3_600_010, put("x", b"1", client=3, seq=1, ts=jumped))
    assert 1 not in _clients(store) and 3 in _clients(store)


def test_log_time_never_moves_backwards_and_is_bounded_per_index() -> None:
    t = SessionTable(ttl_ms=1_000, step_ms=2)
    assert t.log_time(5, 10_000) == 10_000  # no session yet: the leader's time
    t.record(1, 1, b"", index=5, timestamp_ms=10_000)
    assert t.log_time(6, 9_000) == 10_000  # a clock behind: the log clock stays
    assert t.log_time(6, 99_000) == 10_002  # a jump: at most step_ms per index
    assert t.log_time(105, 10_150) == 10_150  # sane clocks are followed
    t.record(2, 1, b"", index=105, timestamp_ms=10_150)
    assert t.log_time(600, 99_999) == 11_140
    assert t.expire(t.log_time(600, 99_999)) == [1]  # idle 1,140 ms of log time
    with pytest.raises(ValueError):
        SessionTable(step_ms=0)


def _clients(store: Store) -> set[int]:
    return {int.from_bytes(k, "big") for k, _ in store.tree("kv.sessions").iter()}


def test_replicas_decide_identically_across_restarts(tmp_path: Path) -> None:
    """Two replicas apply one log; one restarts often. Every result must match."""
    rng = random.Random(3)
    next_seq: dict[int, int] = {}
    log = []
    for i in range(1, 600):
        client = rng.randint(1, 8)
        seq = next_seq.get(client, 1)
        roll = rng.random()
        if roll < 0.2 and seq > 1:
            seq -= 1  # a retry of the last write
        elif roll < 0.3 and seq > 2:
            seq -= 2  # a stale one
        else:
            next_seq[client] = seq + 1
        ts = i * 100 + rng.randint(0, 3000)  # leaders' clocks disagree a little
        log.append((i, put(f"k{i % 11}", b"%d" % i, client=client, seq=seq, ts=ts)))
    with Store.open(tmp_path / "a") as a_store:
        a = KVStateMachine(a_store, max_sessions=6, session_ttl_ms=4_000)
        expected = [a.apply(i, cmd) for i, cmd in log]
    got: list[bytes] = []
    for lo in range(0, len(log), 37):
        with Store.open(tmp_path / "b") as b_store:
            b = KVStateMachine(b_store, max_sessions=6, session_ttl_ms=4_000)
            got.extend(b.apply_batch(log[lo : lo + 37]))
    assert got == expected
    codes = {KVResult.decode(r).code for r in expected}
    assert {ResultCode.OK, ResultCode.STALE} <= codes
    assert len(set(expected)) < len(expected)  # some retries answered from sessions


def test_session_table_unit() -> None:
    t = SessionTable(max_sessions=2, ttl_ms=100)
    assert t.check(1, 1) == (Verdict.NEW, b"")
    t.record(1, 1, b"r1", index=1, timestamp_ms=0)
    assert t.check(1, 1) == (Verdict.DUPLICATE, b"r1")
    assert t.check(1, 0)[0] is Verdict.STALE
    t.record(2, 1, b"r2", index=2, timestamp_ms=50)
    _, evicted = t.record(3, 1, b"r3", index=3, timestamp_ms=60)
    assert evicted == [1] and len(t) == 2
    assert t.expire(155) == [2] and 3 in t
    with pytest.raises(TypeError, match="max_sessions"):
        SessionTable(max_sessions="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionTable(ttl_ms=0)
