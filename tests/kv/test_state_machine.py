"""KVStateMachine on real LevelDB files: apply, exactly-once, reads, snapshot/restore."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.consensus.state_machine import SnapshotSource, StateMachine
from nexus_raft.errors import CorruptionError, InvalidCommand, RaftUsageError, Unavailable
from nexus_raft.kv.commands import KVCommand, KVOp, KVResult, ResultCode
from nexus_raft.kv.records import encode_record
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Batch, Store

KV_TREES = ("kv.data", "kv.meta", "kv.sessions", "kv.events")


def res(raw: bytes) -> KVResult:
    return KVResult.decode(raw)


def put(key: str, value: bytes, **kw: int) -> bytes:
    return KVCommand.put(key, value, **kw).encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as s:
        yield s


def test_protocol_conformance(store: Store) -> None:
    sm = KVStateMachine(store)
    assert isinstance(sm, StateMachine)
    assert isinstance(sm.snapshot(), SnapshotSource)


def test_put_get_delete_cas_revisions(store: Store) -> None:
    sm = KVStateMachine()
    assert sm.open(store) == 0
    r = res(sm.apply(1, put("users/alice", b"a1")))
    assert (r.ok, r.revision, r.prev_value) == (True, 1, None)
    r = res(sm.apply(2, put("users/alice", b"a2")))
    assert (r.ok, r.revision, r.prev_value) == (True, 2, b"a1")
    assert sm.get("users/alice") == (b"a2", 2)
    assert sm.get(b"users/bob") == (None, 0)
    r = res(sm.apply(3, KVCommand.cas("users/alice", b"wrong", b"x").encode()))
    assert (r.ok, r.code, r.revision, r.prev_value) == (False, ResultCode.CAS_FAILED, 2, b"a2")
    r = res(sm.apply(4, KVCommand.cas("users/alice", b"a2", b"a3").encode()))
    assert (r.ok, r.revision) == (True, 3)  # the failed cas took no revision
    r = res(sm.apply(5, KVCommand.cas("users/bob", None, b"b1").encode()))
    assert (r.ok, r.revision, r.prev_value) == (True, 4, None)
    r = res(sm.apply(6, KVCommand.cas("users/bob", None, b"b2").encode()))
    assert r.code is ResultCode.CAS_FAILED
    r = res(sm.apply(7, KVCommand.cas("users/bob", b"b1", None).encode()))  # CAS delete
    assert (r.ok, r.revision, r.prev_value) == (True, 5, b"b1")
    r = res(sm.apply(8, KVCommand.delete("users/alice").encode()))
    assert (r.ok, r.revision, r.prev_value) == (True, 6, b"a3")
    r = res(sm.apply(9, KVCommand.delete("users/alice").encode()))  # absent: no change
    assert (r.ok, r.revision, r.prev_value) == (True, 6, None)
    assert sm.revision() == 6 and sm.applied_index() == 9
    assert sm.get("users/alice") == (None, 0)


def test_apply_batch_is_one_write_and_sees_its_own_writes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = KVStateMachine(store)
    calls = 0
    real = Store._apply_batch

    def counting(self: Store, batch: object, target: object, *args: object) -> None:
        # Every Store/Tree.apply_batch goes through here: one call = one LevelDB write.
        nonlocal calls
        calls += 1
        real(self, batch, target, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_apply_batch", counting)
    items = [(i, put(f"k/{i % 100}", b"v%d" % i)) for i in range(1, 1001)]
    items.append((1001, KVCommand.cas("k/0", b"v1000", b"final").encode()))
    results = [res(r) for r in sm.apply_batch(items)]
    assert calls == 1
    assert all(r.ok for r in results)
    assert results[150].prev_value == b"v51"  # the batch's own earlier write
    assert sm.get("k/0") == (b"final", 1001)
    assert sm.applied_index() == 1001


def test_exactly_once_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path) as store:
        sm = KVStateMachine(store)
        sm.apply_batch([(i, put("counter", b"%d" % i)) for i in range(1, 11)])
        sm.close()
    with Store.open(path) as store:
        sm = KVStateMachine()
        assert sm.open(store) == 10
        assert sm.revision() == 10
        # The node replays from its log: indexes <= applied are no-ops.
        out = sm.apply_batch([(i, put("counter", b"again")) for i in range(5, 13)])
        assert [res(r).code for r in out[:6]] == [ResultCode.ALREADY_APPLIED] * 6
        assert sm.get("counter") == (b"again", 12)
        assert sm.applied_index() == 12
        with pytest.raises(RaftUsageError):
            sm.apply_batch([(14, put("a", b"")), (13, put("b", b""))])
        with pytest.raises(RaftUsageError):
            sm.open(store)


def test_note_applied_advances_without_a_change(store: Store) -> None:
    sm = KVStateMachine(store)
    sm.apply(1, put("a", b"1"))
    sm.note_applied(2)
    sm.note_applied(2)  # idempotent
    assert (sm.applied_index(), sm.revision()) == (2, 1)
    assert sm.apply_batch([(3, b"")]) == [b""]
    assert sm.applied_index() == 3


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # (empty is a no-op, not an error: checked separately)
        b"\x00",
        b"garbage garbage garbage garbage garbage garbage",
        KVCommand.put("k", b"v").encode()[:-1],
        KVCommand.put("k", b"v").encode() + b"x",
        b"\xc1\x09" + KVCommand.put("k", b"v").encode()[2:],  # unknown op
        b"\xc1\x01\x80" + KVCommand.put("k", b"v").encode()[3:],  # unknown flag
    ],
)
def test_malformed_commands_become_error_results(store: Store, raw: bytes) -> None:
    sm = KVStateMachine(store)
    out = sm.apply(1, raw)
    if raw:
        r = res(out)
        assert (r.ok, r.code) == (False, ResultCode.INVALID)
        assert r.error
    assert sm.applied_index() == 1
    assert res(sm.apply(2, put("still", b"works"))).ok


def test_random_bytes_never_crash_apply(store: Store) -> None:
    sm = KVStateMachine(store)
    rng = random.Random(7)
    good = KVCommand.cas("a/b", b"x", b"y", client_id=3, seq=1).encode()
    items = []
    for i in range(1, 2001):
        blob = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        items.append((i, bytes(blob[: rng.randint(0, len(blob))])))
    out = sm.apply_batch(items)
    assert len(out) == 2000 and sm.applied_index() == 2000


def test_limits_and_bad_keys(store: Store) -> None:
    sm = KVStateMachine(store, max_value_bytes=1024, max_key_bytes=16)
    assert res(sm.apply(1, put("k", b"x" * 1024))).ok
    r = res(sm.apply(2, put("k", b"x" * 1025)))
    assert (r.ok, r.code) == (False, ResultCode.TOO_LARGE)
    for i, key in enumerate([b"", b"a\x00b", b"\xff\xfe", b"k" * 17], start=3):
        r = res(sm.apply(i, KVCommand(KVOp.PUT, key, b"v").encode()))
        assert (r.ok, r.code) == (False, ResultCode.INVALID), key
    assert sm.get("k") == (b"x" * 1024, 1)
    with pytest.raises(TypeError, match="key"):
        sm.get(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="command"):
        sm.apply(9, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_value_bytes"):
        KVStateMachine(max_value_bytes="big")  # type: ignore[arg-type]
    with pytest.raises(RaftUsageError):
        KVStateMachine().get("k")


def test_command_codec_round_trip_and_validation() -> None:
    cmds = [
        KVCommand.put("a/b", b"v", client_id=1, seq=2, timestamp_ms=3),
        KVCommand.put(b"k", b""),
        KVCommand.delete("a"),
        KVCommand.cas("a", None, b"n"),
        KVCommand.cas("a", b"", None),
        KVCommand.cas("a", b"e", b"n", client_id=2**64 - 1, seq=9),
    ]
    for cmd in cmds:
        assert KVCommand.decode(cmd.encode()) == cmd
    for result in (KVResult(True, 5, b"p"), KVResult(False, 2, None, "oops", ResultCode.STALE)):
        assert KVResult.decode(result.encode()) == result
    with pytest.raises(InvalidCommand):
        KVCommand.decode(b"\x01" * 40)
    with pytest.raises(InvalidCommand):
        KVResult.decode(b"\x01")
    with pytest.raises(TypeError, match="value"):
        KVCommand.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KVCommand(KVOp.PUT, b"k")
    with pytest.raises(ValueError):
        KVCommand(KVOp.DELETE, b"k", expected=b"x")
    with pytest.raises(ValueError, match="client_id"):
        KVCommand.put("k", b"v", client_id=-1)


def test_list_keys_and_prefixes(store: Store) -> None:
    sm = KVStateMachine(store)
    keys = ["users/alice", "users/bob/x", "users/bob/y", "users/carol", "usersX", "v/\xff/1"]
    sm.apply_batch([(i, put(k, b"")) for i, k in enumerate(keys, start=1)])
    assert sm.list_keys("users/") == [
        b"users/alice",
        b"users/bob/x",
        b"users/bob/y",
        b"users/carol",
    ]
    assert sm.list_keys("users/", limit=2) == [b"users/alice", b"users/bob/x"]
    assert sm.list_keys("nobody/") == []
    assert sm.prefixes("users/") == [b"users/alice", b"users/bob/", b"users/carol"]
    assert sm.prefixes("") == [b"users/", b"usersX", b"v/"]
    assert sm.prefixes("users") == [b"users/", b"usersX"]
    assert sm.prefixes("v/\xff/") == ["v/\xff/1".encode()]


def _dump(store: Store) -> dict[str, list[tuple[bytes, bytes]]]:
    return {name: list(store.tree(name).iter()) for name in KV_TREES}


def test_snapshot_restore_round_trip_streams_100k_keys(tmp_path: Path) -> None:
    src_store = Store.open(tmp_path / "src")
    dst_store = Store.open(tmp_path / "dst")
    try:
        n = 100_000
        value = b"v" * 40
        # Bulk state written the way apply writes it (record = metadata + value),
        # so the test's time goes to the snapshot stream, not to building it.
        data = src_store.tree("kv.data")
        for lo in range(0, n - 6000, 10_000):
            batch = Batch()
            for i in range(lo, min(lo + 10_000, n - 6000)):
                batch.insert(f"bulk/key{i:07d}", encode_record(value, 1, 1, 1), tree=data)
            src_store.apply_batch(batch)
        src = KVStateMachine(src_store, max_sessions=50, max_events=1000)
        index = 0
        for lo in range(0, 6000, 2000):
            items = []
            for i in range(lo, lo + 2000):
                index += 1
                items.append(
                    (
                        index,
                        put(
                            f"dir{i % 97}/key{i:07d}",
                            value,
                            client_id=i % 60 + 1,
                            seq=i // 60 + 1,
                            timestamp_ms=1000 + i,
                        ),
                    )
                )
            src.apply_batch(items)
        expected = _dump(src_store)
        snap = src.snapshot()
        assert snap.index == index
        # Writes after the snapshot began are not in it (consistent view).
        src.apply(index + 1, put("late", b"x"))

        sizes: list[int] = []

        def chunks() -> Iterator[bytes]:
            for chunk in snap:
                sizes.append(len(chunk))
                yield chunk

        dst = KVStateMachine(dst_store, max_sessions=50, max_events=1000)
        dst.apply(1, put("stale/key", b"gone after restore"))
        dst.restore(snap.index, chunks())
        assert len(sizes) > 4 and max(sizes) < (1 << 20) + 4096
        assert dst.applied_index() == index
        assert dst.revision() == src.revision() - 1
        got = _dump(dst_store)
        for name in ("kv.data", "kv.sessions", "kv.events"):
            assert got[name] == expected[name], name
        assert len(got["kv.data"]) == n
        assert dst.get("stale/key") == (None, 0)
        # The restored sessions answer retries like the source would have.
        last_i = max(i for i in range(6000) if i % 60 == 59)
        retry = put("x", b"other", client_id=60, seq=last_i // 60 + 1, timestamp_ms=10**6)
        assert dst.apply(index + 1, retry) == src.apply(index + 2, retry)
        assert dst.get("x") == (None, 0) and src.get("x") == (None, 0)
        dst.close()
        src.close()
    finally:
        src_store.close()
        dst_store.close()


def test_restore_rejects_bad_streams_and_serves_nothing_until_one_succeeds(
    store: Store, tmp_path: Path
) -> None:
    with Store.open(tmp_path / "other") as other:
        src = KVStateMachine(other, snapshot_chunk_bytes=256)
        src.apply_batch([(i, put(f"k{i}", b"x" * 50)) for i in range(1, 101)])
        with src.snapshot() as snap:
            chunks = list(snap)
    sm = KVStateMachine(store)
    sm.apply(1, put("mine", b"v"))
    with pytest.raises(CorruptionError):
        sm.restore(100, chunks[:-1])  # truncated
    assert sm.applied_index() == 0
    with pytest.raises(Unavailable):  # an emptied store never answers as the state
        sm.get("mine")
    with pytest.raises(CorruptionError):
        sm.restore(99, chunks)  # wrong index
    with pytest.raises(CorruptionError):
        sm.restore(100, [b"NOPE" + chunks[0][4:], *chunks[1:]])
    # Any re-chunking of the same bytes restores fine.
    blob = b"".join(chunks)
    sm.restore(100, [blob[i : i + 7] for i in range(0, len(blob), 7)])
    assert sm.applied_index() == 100 and sm.get("k7") == (b"x" * 50, 7)


def test_interrupted_restore_is_wiped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path) as store:
        sm = KVStateMachine(store)
        sm.apply_batch([(i, put(f"k{i}", b"v", client_id=1, seq=i)) for i in range(1, 51)])
        snap = list(sm.snapshot())
        # What a process killed in the middle of restore() leaves behind: the
        # marker plus some of the new state on top of a half-dropped old one.
        store.tree("kv.meta").set(b"restoring", b"")
        store.tree("kv.data").set(b"half", b"\x00" * 8 + b"loaded")
    with Store.open(path) as store:
        sm = KVStateMachine()
        assert sm.open(store) == 0
        assert sm.list_keys() == [] and sm.revision() == 0
        assert list(store.tree("kv.sessions").iter()) == []
        sm.restore(50, snap)
        assert sm.applied_index() == 50 and len(sm.list_keys()) == 50
    with Store.open(path) as store:
        assert KVStateMachine(store).applied_index() == 50
