"""Real nexus-node processes losing members: kill -9, SIGSTOP, catch-up by snapshot.

The invariant under test is the client's contract: a write the client saw
acknowledged is never lost, whatever happens to the members afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.sync import SyncClient, SyncWatch
from nexus_raft.kv.client.types import WatchEvent

from .harness import ProcessCluster, wait_until

pytestmark = pytest.mark.process

MakeCluster = Callable[..., ProcessCluster]


class Writers:
    """Threads writing unique keys through one SyncClient; records what was acknowledged."""

    def __init__(self, client: SyncClient, prefix: str, threads: int = 4) -> None:
        self._client = client
        self._prefix = prefix
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.acked: dict[str, bytes] = {}
        self.failures = 0
        self._threads = [
            threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(threads)
        ]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            key, value = f"{self._prefix}/{worker}/{i}", f"{worker}-{i}".encode()
            i += 1
            try:
                self._client.put(key, value, timeout=10)
            except NexusRaftError:
                with self._lock:
                    self.failures += 1
                continue
            with self._lock:
                self.acked[key] = value

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_more(self, more: int, timeout: float = 20.0) -> float:
        """Wait until ``more`` further writes are acknowledged; returns seconds waited."""
        start, target = time.monotonic(), self.count() + more
        wait_until(f"{more} more acknowledged writes", lambda: self.count() >= target, timeout)
        return time.monotonic() - start


class WatchCollector:
    """Drains a blocking watch in a thread."""

    def __init__(self, stream: SyncWatch) -> None:
        self.stream = stream
        self.events: list[WatchEvent] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self.stream:
            with self._lock:
                self.events.append(event)

    def keys(self) -> set[str]:
        with self._lock:
            return {e.key.decode() for e in self.events}

    def close(self) -> None:
        self.stream.close()
        self._thread.join(timeout=10)


def assert_all_present(cluster: ProcessCluster, acked: dict[str, bytes], prefix: str) -> None:
    """Every acknowledged write is readable (linearizable) and on every running member."""

    async def read_all() -> list[bytes | None]:
        async with Client(cluster.endpoints(), timeout=20) as client:
            return await asyncio.gather(*(client.get(k) for k in acked))

    values = asyncio.run(read_all())
    lost = [k for k, v in zip(acked, values, strict=True) if v != acked[k]]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
    commit = cluster.status_of(cluster.wait_for_leader()).commit
    for node_id, member in cluster.members.items():
        if not member.running or node_id not in cluster.initial:
            continue
        cluster.wait_applied(node_id, commit)
        local = cluster.client(ids=[node_id]).list_keys(prefix + "/", serializable=True)
        missing = set(acked) - {k.decode() for k in local}
        assert not missing, f"member {node_id} misses {len(missing)} acknowledged writes"


def test_kill_leader_then_follower_during_writes_loses_no_acknowledged_write(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3)
    with Writers(cluster.client(timeout=10), "kill") as writers:
        writers.wait_more(50)
        old_leader = cluster.wait_for_leader()
        # A watch of everything since revision 1 whose first choice of member
        # is the leader about to die: it must move elsewhere and miss nothing.
        watch_client = cluster.client(
            ids=[old_leader, *(i for i in cluster.initial if i != old_leader)]
        )
        watched = WatchCollector(watch_client.watch("kill/", start_revision=1))
        cluster.members[old_leader].kill()
        failover = writers.wait_more(20)
        new_leader = cluster.wait_for_leader(not_id=old_leader)
        assert new_leader != old_leader
        assert failover < 10, f"writes resumed only after {failover:.1f}s"
        # Bring the old leader back, then lose a follower instead.
        cluster.start([old_leader])
        cluster.wait_applied(old_leader, cluster.status_of(new_leader).commit)
        follower = next(i for i in cluster.initial if i not in (new_leader,))
        cluster.members[follower].kill()
        writers.wait_more(50)
        cluster.start([follower])
        writers.wait_more(20)
    assert writers.count() >= 140
    assert_all_present(cluster, writers.acked, "kill")
    wait_until(
        "the watch to deliver every acknowledged write",
        lambda: set(writers.acked) <= watched.keys(),
        20,
    )
    watched.close()
    revisions = [e.revision for e in watched.events]
    assert revisions == sorted(set(revisions)), "watch delivered a duplicate or out of order"
    assert watched.stream.reconnects >= 1


def test_paused_leader_is_replaced_and_steps_down_on_resume(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(3)
    client = cluster.client(timeout=15)
    client.put("pause/before", b"1")
    old = cluster.wait_for_leader()
    cluster.members[old].pause()
    new = cluster.wait_for_leader(not_id=old, among=[i for i in cluster.initial if i != old])
    assert new != old
    client.put("pause/during", b"2")
    cluster.members[old].resume()
    wait_until(
        "the resumed leader to step down and follow",
        lambda: (s := cluster.status_of(old)).role != "leader" and s.leader_id == new,
        15,
    )
    cluster.wait_applied(old, cluster.status_of(new).commit)
    assert cluster.client(ids=[old]).get("pause/during", serializable=True) == b"2"
    assert client.get("pause/before") == b"1"


def test_member_that_missed_compacted_entries_catches_up_by_snapshot(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(3, extra_args=["--snapshot-every", "25", "--keep-entries", "10"])
    leader = cluster.wait_for_leader()
    lagger = next(i for i in cluster.initial if i != leader)
    client = cluster.client(timeout=15)
    client.put("snap/first", b"0")
    cluster.wait_applied(lagger, cluster.status_of(leader).commit)
    behind_at = cluster.status_of(lagger).last_index
    cluster.members[lagger].kill()

    async def write_many() -> None:
        async with Client(cluster.endpoints(), timeout=20) as c:
            for start in range(0, 400, 50):
                chunk = range(start, start + 50)
                await asyncio.gather(*(c.put(f"snap/{i}", str(i).encode()) for i in chunk))
            # Concurrent puts may share a log entry (a client batch is one
            # entry), so the log grows past the lagger by one-at-a-time puts.
            for i in range(120):
                await c.put("fill", str(i).encode())

    asyncio.run(write_many())
    leader = cluster.wait_for_leader()
    leader_view = wait_until(
        "the leader to compact past the lagging member",
        lambda: (s := cluster.status_of(leader)).snapshot_index - 10 > behind_at + 50 and s,
        30,
    )
    cluster.start([lagger])
    caught_up = cluster.wait_applied(lagger, leader_view.commit, timeout=30)
    # The entries it missed no longer exist as log entries: only a snapshot brings them.
    assert caught_up.applied >= leader_view.commit
    assert "snapshot" in cluster.members[lagger].log_path.read_text(errors="replace")
    local = cluster.client(ids=[lagger])
    assert len(local.list_keys("snap/", serializable=True)) == 401
    assert local.get("snap/123", serializable=True) == b"123"
    client.put("snap/after", b"x")  # and it keeps replicating normally afterwards
    cluster.wait_applied(lagger, cluster.status_of(leader).commit)
    assert local.get("snap/after", serializable=True) == b"x"
