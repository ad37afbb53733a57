"""Format-1 stores (written before the etcd API) open, migrate and keep working.

The fixtures in tests/kv/fixtures were written by the old code (see
make_v1_datadir.py there): a member's data directory and a KV snapshot stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import tarfile
from pathlib import Path

import pytest

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv import migrate as migrate_module
from nexus_raft.kv.commands import KVCommand, KVResult
from nexus_raft.kv.records import FORMAT, decode_u64
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.kv.watch_hub import WatchEvent
from nexus_raft.storage import Store

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "v1_expected.json").read_text())


def _show(value: bytes | None) -> str:
    assert value is not None
    if len(value) <= 64:
        return value.decode()
    return f"<{len(value)} bytes sha256 {hashlib.sha256(value).hexdigest()[:16]}>"


def _unpack(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURES / "kv_v1_datadir.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "member"


def _check_migrated(sm: KVStateMachine) -> None:
    assert {k.decode(): [_show(sm.get(k)[0]), sm.get(k)[1]] for k in sm.list_keys()} == (
        EXPECTED["data"]
    )
    assert sm.revision() == EXPECTED["revision"]
    rev = EXPECTED["revisions"]
    # The history was complete (floor 1): create revisions and versions are exact.
    a = sm.get_record("a")
    assert a is not None and (a.create, a.mod, a.version) == (
        rev["put a"], rev["put a again"], 3
    )
    y = sm.get_record("dir/y")
    assert y is not None and (y.create, y.mod, y.version, y.lease) == (
        rev["put dir/y"], rev["put dir/y"], 1, 0
    )
    assert sm.compacted_revision() == 0
    # A read at a past revision sees the state of then: dir/x existed, a was "1".
    with sm.read_view() as view:
        view.check_revision(rev["put dir/y"])
        past = dict(
            (k, r.value) for k, r in _at(view, rev["put dir/y"])
        )
    assert past == {b"a": b"1", b"dir/x": b"2", b"dir/y": b"3"}


def _at(view: object, revision: int) -> list[tuple[bytes, object]]:
    from nexus_raft.kv.etcd.ranges import state_at

    return state_at(view.items(b"", None), view.changes_after(revision), b"", None)  # type: ignore[attr-defined]


def test_a_format1_data_directory_opens_migrated_and_keeps_its_history(tmp_path: Path) -> None:
    member = _unpack(tmp_path)
    with Store.open(member / "store") as store:
        sm = KVStateMachine()
        assert sm.open(store) == EXPECTED["applied"]
        assert decode_u64(store.tree("kv.meta").get(b"format") or b"") == FORMAT
        _check_migrated(sm)

        async def history() -> list[WatchEvent]:
            async with sm.watch("", start_revision=1) as stream:
                return [await stream.__anext__() for _ in range(8)]

        events = asyncio.run(history())
        rev = EXPECTED["revisions"]
        assert [(e.revision, e.key) for e in events][:3] == [
            (rev["put a"], b"a"), (rev["put dir/x"], b"dir/x"), (rev["put dir/y"], b"dir/y")
        ]
        deleted = next(e for e in events if e.value is None)
        assert deleted.key == b"dir/x" and deleted.prev is not None
        assert deleted.prev.value == b"2"
        cas = next(e for e in events if e.revision == rev["cas a"])
        assert (cas.value, cas.version, cas.prev.value if cas.prev else None) == (b"10", 2, b"1")
        # New writes continue after the old revisions, one revision per change.
        out = KVResult.decode(sm.apply(EXPECTED["applied"] + 1, KVCommand.put("a", b"12").encode()))
        assert out.revision == EXPECTED["revision"] + 1
        sm.close()


def test_a_format1_member_restarts_as_a_node_with_its_data(tmp_path: Path) -> None:
    member = _unpack(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"

    async def main() -> None:
        sm = KVStateMachine()
        node = RaftNode(
            NodeConfig(
                id=1, listen=addr, peers={1: addr}, data_dir=member, cluster_id="v1-fixture"
            ),
            sm,
        )
        await node.start()
        try:
            await node.wait_for_leader(timeout=20)
            _check_migrated(sm)
            raw = await node.propose(KVCommand.put("after", b"upgrade").encode(), timeout=20)
            assert KVResult.decode(raw).revision == EXPECTED["revision"] + 1
        finally:
            await node.shutdown()

    asyncio.run(main())


def test_a_format1_snapshot_stream_restores_migrated(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as store:
        sm = KVStateMachine(store)
        sm.apply(1, KVCommand.put("gone", b"x").encode())
        data = (FIXTURES / "kv_v1_snapshot.bin").read_bytes()
        sm.restore(EXPECTED["snapshot_index"], [data[:100], data[100:]])
        assert sm.get("gone") == (None, 0)
        _check_migrated(sm)
        sm.close()


def test_a_migration_cut_short_by_a_crash_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = _unpack(tmp_path)
    monkeypatch.setattr(migrate_module, "_BATCH_BYTES", 1)  # a batch per record
    writes = 0
    real = Store.apply_batch

    def crashing(self: Store, batch: object) -> None:
        nonlocal writes
        writes += 1
        if writes == 11:  # 8 events, then mid-way through the data records
            raise OSError("power cut")
        real(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "apply_batch", crashing)
    with Store.open(member / "store") as store, pytest.raises(OSError, match="power cut"):
        KVStateMachine().open(store)
    monkeypatch.setattr(Store, "apply_batch", real)
    with Store.open(member / "store") as store:
        meta = store.tree("kv.meta")
        assert meta.get(b"format") is None and meta.get(b"migrate-data") is not None
        sm = KVStateMachine()
        assert sm.open(store) == EXPECTED["applied"]
        _check_migrated(sm)
        sm.close()
