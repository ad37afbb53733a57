"""Issue 6 acceptance with real processes: two ``nexus-node`` members and one ``nexus-witness``.

Every test starts its own cluster through the ``two_plus_one`` fixture, which
kills all processes in ``finally``; every wait polls with a deadline.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from nexus_raft.consensus.log.store import LogStore
from nexus_raft.kv.client.sync import SyncClient
from nexus_raft.kv.client.types import NodeInfo
from nexus_raft.kv.wire import NOT_LEADER, kv_pb2, kv_pb2_grpc
from nexus_raft.storage import Store
from nexus_raft.witness import disk_bytes
from tests.integration.harness import REPO_ROOT

from .inproc import free_ports
from .process_helpers import WITNESS, Proc, TwoPlusOne, wait_until

pytestmark = pytest.mark.process


def _floor(info: NodeInfo) -> int:
    """The witness's payload floor as the answering member reports it."""
    return next(m.payload_floor for m in info.members if m.id == WITNESS)


def _value(i: int, size: int) -> bytes:
    # Incompressible (LevelDB compresses tables), and different for every key.
    return random.Random(i).randbytes(size)


def _write(cluster: TwoPlusOne, acked: dict[str, bytes], keys: range, size: int = 100,
           prefix: str = "k/") -> None:
    client = cluster.client()
    for i in keys:
        key, value = f"{prefix}{i:05d}", _value(i, size)
        client.put(key, value)
        acked[key] = value  # acknowledged: it must survive whatever happens next


def _check_all(cluster: TwoPlusOne, acked: dict[str, bytes], ids: tuple[int, ...]) -> None:
    client = cluster.client(ids)
    missing = [k for k, v in acked.items() if client.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"


def _stored_hard_state(cluster: TwoPlusOne, node_id: int) -> tuple[int, int]:
    """(term, vote) in the stopped member's store."""
    with Store.open(cluster.members[node_id].data_dir / "store") as store:
        hs = LogStore(store).hard_state
    return hs.term, hs.vote


def test_writes_commit_and_the_witness_stores_under_10_percent(two_plus_one: Any) -> None:
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    # 5 MiB of values: 320 writes of 16 KiB.
    _write(c, acked, range(320), size=16 * 1024, prefix="big/")
    leader = c.wait_for_leader()
    last = c.status_of(leader).last_index
    # After the writes stop the witness has all the metadata and no payloads.
    info = wait_until(
        "the witness to hold every entry and drop every payload",
        lambda: i if (i := c.status_of(WITNESS)).commit >= last and _floor(i) >= last else None,
        15,
    )
    assert info.role in ("follower", "witness")
    full = min(disk_bytes(c.members[i].data_dir) for i in (1, 2))
    witness = disk_bytes(c.members[WITNESS].data_dir)
    assert full > 5 * 1024 * 1024
    assert witness < full / 10, f"witness {witness} bytes vs full member {full} bytes"
    _check_all(c, acked, (1, 2))


def test_the_witness_never_answers_a_client_read_with_data(two_plus_one: Any) -> None:
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    _write(c, acked, range(10))
    leader = c.wait_for_leader()
    with grpc.insecure_channel(c.addresses[WITNESS]) as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        for serializable in (False, True):
            got = kv.Get(kv_pb2.GetRequest(key=b"k/00003", serializable=serializable), timeout=5)
            assert got.error.code == NOT_LEADER
            assert got.error.leader_address == c.addresses[leader]
            assert not got.found and got.value == b""
            keys = kv.ListKeys(kv_pb2.ListKeysRequest(prefix=b"k/", serializable=serializable),
                               timeout=5)
            assert keys.error.code == NOT_LEADER and list(keys.keys) == []
            prefixes = kv.Prefixes(kv_pb2.PrefixesRequest(prefix=b"", serializable=serializable),
                                   timeout=5)
            assert prefixes.error.code == NOT_LEADER and list(prefixes.prefixes) == []
        batch = kv.Batch(kv_pb2.BatchRequest(ops=[
            kv_pb2.BatchOp(get=kv_pb2.GetRequest(key=b"k/00001", serializable=True)),
        ]), timeout=5)
        # Refused as a whole (batch-level error) or per operation; never with a value.
        codes = [batch.error.code] + [r.get.error.code for r in batch.results]
        assert NOT_LEADER in codes
        assert all(not r.get.found and r.get.value == b"" for r in batch.results)
        stream = kv.Watch(kv_pb2.WatchRequest(prefix=b"k/", start_revision=1), timeout=5)
        first = next(iter(stream))
        assert first.error.code == NOT_LEADER and list(first.events) == []
        put = kv.Put(kv_pb2.PutRequest(key=b"w", value=b"x", client_id=1, seq=1), timeout=5)
        assert put.error.code == NOT_LEADER and put.error.leader_address == c.addresses[leader]
        status = kv.Status(kv_pb2.StatusRequest(), timeout=5)
        assert status.id == WITNESS and status.leader_id == leader and status.revision == 0
        kinds = {m.id: m.kind for m in status.members}
        assert kinds == {1: "voter", 2: "voter", 3: "witness"}


def test_leader_killed_the_other_full_member_leads_with_the_witness(two_plus_one: Any) -> None:
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    _write(c, acked, range(40))
    old = c.wait_for_leader()
    other = 2 if old == 1 else 1
    c.members[old].kill()
    new = c.wait_for_leader(among=(other, WITNESS))
    assert new == other
    # One full member and the witness keep committing: the witness now holds payloads.
    _write(c, acked, range(40, 80), size=1000)
    info = c.status_of(other)
    assert _floor(info) < info.last_index, "payloads must reach the witness while 1 full voter"
    _check_all(c, acked, (other, WITNESS))

    # The killed member comes back, catches up, and the witness drops the payloads again.
    c.members[old].start()
    leader = c.wait_for_leader()
    last = c.status_of(leader).last_index
    wait_until(
        "the witness's payload floor to reach the end of the log",
        lambda: _floor(c.status_of(WITNESS)) >= last,
        20,
    )
    _check_all(c, acked, (1, 2))


def test_stalled_full_member_is_brought_up_to_date_by_the_witness(two_plus_one: Any) -> None:
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    _write(c, acked, range(20))
    leader = c.wait_for_leader()
    other = 2 if leader == 1 else 1
    c.members[other].pause()
    # More writes than the leader's in-flight window to the paused member, so whatever
    # sits in its socket buffers, it lacks committed entries when it resumes.
    _write(c, acked, range(20, 170), size=200)
    c.members[leader].kill()
    c.members[other].resume()
    new = c.wait_for_leader(among=(other, WITNESS), timeout=30)
    assert new == other
    out = c.members[WITNESS].output()
    assert f"node {WITNESS}: leader is now {WITNESS}" in out, (
        "the witness never led, so it did not hand the entries over"
    )
    _write(c, acked, range(170, 180))
    _check_all(c, acked, (other,))


def test_witness_restarts_from_its_data_dir_with_term_and_vote(two_plus_one: Any) -> None:
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    _write(c, acked, range(10))
    term = c.status_of(WITNESS).term
    c.members[WITNESS].kill()
    stored_term, stored_vote = _stored_hard_state(c, WITNESS)
    assert stored_term == term
    # Two full members commit without the witness.
    _write(c, acked, range(10, 20))
    c.members[WITNESS].start()
    info = wait_until(
        "the restarted witness to follow the leader",
        lambda: i if (i := c.status_of(WITNESS)).leader_id in (1, 2) else None,
        20,
    )
    assert info.term >= stored_term
    _write(c, acked, range(20, 30))
    leader_last = c.status_of(c.wait_for_leader()).last_index
    wait_until("the witness to catch up", lambda: c.status_of(WITNESS).commit >= leader_last, 15)
    assert c.members[WITNESS].terminate() == 0
    assert "[stopped]" in c.members[WITNESS].output()
    term2, vote2 = _stored_hard_state(c, WITNESS)
    assert term2 >= stored_term
    if term2 == stored_term:
        assert vote2 == stored_vote, "the witness changed its vote within a term"
    _check_all(c, acked, (1, 2))


def test_a_witness_added_and_removed_at_run_time(tmp_path: Path) -> None:
    """Two full members; ``nexus-witness --join`` adds itself; removed, it stops (exit 3)."""
    ports = free_ports(3)
    addresses = {i: f"127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
    initial = {1: addresses[1], 2: addresses[2]}
    peers = ",".join(f"{i}={a}" for i, a in initial.items())
    procs = {
        i: Proc(i, addresses[i], tmp_path / f"m{i}", tmp_path / f"m{i}.log",
                "nexus_raft.cli.node",
                ["--id", str(i), "--listen", addresses[i], "--peers", peers,
                 "--data-dir", str(tmp_path / f"m{i}")])
        for i in (1, 2)
    }  # fmt: skip
    procs[3] = Proc(3, addresses[3], tmp_path / "m3", tmp_path / "m3.log",
                    "nexus_raft.cli.witness",
                    ["--id", "3", "--listen", addresses[3], "--data-dir", str(tmp_path / "m3"),
                     "--join", addresses[2]])  # fmt: skip
    client = SyncClient([addresses[1], addresses[2]], timeout=20.0)
    try:
        for p in procs.values():
            p.start()
        client.put("before", b"1")
        wait_until(
            "the witness to add itself",
            lambda: {m.id: m.kind for m in client.members()} == {1: "voter", 2: "voter",
                                                                 3: "witness"},
            30,
        )  # fmt: skip
        client.put("after", b"2")
        last = client.status().last_index
        wait_until(
            "the joined witness to follow with metadata only",
            lambda: (i := client.status(endpoint=addresses[3], timeout=0.5)).commit >= last
            and _floor(i) >= last,
            20,
        )
        client.remove_member(3)
        assert {m.id for m in client.members()} == {1, 2}
        assert procs[3].proc is not None and procs[3].proc.wait(timeout=30) == 3  # removed
        client.put("removed", b"3")
        assert client.get("before") == b"1" and client.get("removed") == b"3"
    except AssertionError:
        print("\n".join(f"--- {p.id} ---\n{p.output()[-3000:]}" for p in procs.values()))
        raise
    finally:
        client.close()
        for p in procs.values():
            p.kill()


def test_nexusctl_remove_member_of_a_down_full_member_is_refused(two_plus_one: Any) -> None:
    """``nexusctl remove-member`` of the down full member of 2+1: refused in one line.

    It would leave every committed write on one machine (the witness dropped
    the payloads both full members held); nothing changes, writes go on.
    """
    c: TwoPlusOne = two_plus_one()
    acked: dict[str, bytes] = {}
    _write(c, acked, range(20))
    leader = c.wait_for_leader()
    other = 2 if leader == 1 else 1
    c.members[other].kill()
    _write(c, acked, range(20, 30))
    endpoints = f"{c.addresses[leader]},{c.addresses[WITNESS]}"
    result = subprocess.run(
        [sys.executable, "-m", "nexus_raft.cli.ctl", "--endpoints", endpoints,
         "--timeout", "10", "remove-member", str(other)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )  # fmt: skip
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"removing {other} would leave committed entries" in lines[0], lines[0]
    assert {m.id for m in c.client().members()} == {1, 2, 3}
    _write(c, acked, range(30, 40))
    _check_all(c, acked, (leader,))
