"""The real etcdctl (Debian's etcd-client 3.4) against a 3-member nexus cluster, compared
with what the same commands print against a real etcd 3.4 cluster started here.

One nexus cluster and one etcd cluster serve the whole module. Both start
from an empty store, but etcd's first write is revision 2 and nexus's is 1,
so revisions are compared relative to each cluster's first write; lease ids,
cluster/member ids, terms and sizes differ by nature and are compared by shape.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus_raft.kv.client.sync import SyncClient
from tests.etcd.clusters import (
    EtcdCluster,
    etcdctl,
    leader_endpoint,
    need_etcd,
    nexus_cluster,
)
from tests.integration.harness import ProcessCluster, free_ports, wait_until

pytestmark = pytest.mark.process


class Side:
    """One cluster under test: its endpoints, the leader endpoint and the first revision."""

    def __init__(self, name: str, endpoints: list[str]) -> None:
        self.name = name
        self.endpoints = endpoints
        self.all = ",".join(endpoints)
        self.leader = leader_endpoint(endpoints)
        self.base = 0

    def ctl(self, *args: str, input: str | None = None, leader: bool = True,
            at: str | None = None) -> str:
        """etcdctl against the leader (``leader``), every member, or the endpoint ``at``."""
        where = at if at is not None else self.leader if leader else self.all
        out = etcdctl(where, *args, input=input)
        assert out.returncode == 0, f"{self.name}: etcdctl {' '.join(args)}: {out.stderr}"
        return out.stdout

    def follower(self) -> str:
        """An endpoint whose member does not lead."""
        self.leader = leader_endpoint(self.endpoints)
        return next(e for e in self.endpoints if e != self.leader)

    def fails(self, *args: str) -> str:
        out = etcdctl(self.leader, *args)
        assert out.returncode != 0, f"{self.name}: etcdctl {' '.join(args)} succeeded"
        return out.stderr.strip().splitlines()[-1]

    def rev(self, relative: int) -> str:
        return str(self.base + relative)


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    need_etcd()
    root = tmp_path_factory.mktemp("etcdctl")
    ref = EtcdCluster(root / "etcd")
    nexus: ProcessCluster | None = None
    try:
        ref.start()
        nexus = nexus_cluster(root / "nexus", peer_ports=True)
        sides = (Side("etcd", ref.clients), Side("nexus", nexus.endpoints()))
        for side in sides:
            first = json.loads(side.ctl("put", "base", "0", "-w", "json"))
            side.base = int(first["header"]["revision"])
        yield sides
    finally:
        ref.close()
        if nexus is not None:
            nexus.close()


def both(sides: tuple[Side, Side], *args: str, input: str | None = None) -> list[str]:
    return [side.ctl(*args, input=input) for side in sides]


def same(sides: tuple[Side, Side], *args: str, input: str | None = None) -> str:
    etcd_out, nexus_out = both(sides, *args, input=input)
    assert nexus_out == etcd_out, f"etcdctl {' '.join(args)}"
    return nexus_out


def kvs_relative(side: Side, out: str) -> list[tuple[object, ...]]:
    import base64

    doc = json.loads(out)
    return [
        (base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")),
         int(kv["create_revision"]) - side.base, int(kv["mod_revision"]) - side.base,
         int(kv["version"]), "lease" in kv)
        for kv in doc.get("kvs", [])
    ] + [("count", doc.get("count", 0), doc.get("more", False))]


def test_put_get_range_options_and_del(sides: tuple[Side, Side]) -> None:
    for args in (("put", "k/1", "a"), ("put", "k/2", "b"), ("put", "k/3", "c"),
                 ("put", "k/1", "a2"), ("put", "other", "x")):
        assert same(sides, *args) == "OK\n"
    assert same(sides, "get", "k/1") == "k/1\na2\n"
    assert same(sides, "get", "k/", "--prefix") == "k/1\na2\nk/2\nb\nk/3\nc\n"
    same(sides, "get", "k/", "--prefix", "--keys-only")
    same(sides, "get", "k/", "--prefix", "--limit=1")
    same(sides, "get", "k/", "--prefix", "--consistency=s")
    same(sides, "get", "k/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND")
    counts = [json.loads(s.ctl("get", "k/", "--prefix", "--limit=2", "-w", "json")) for s in sides]
    assert [(c["count"], c.get("more")) for c in counts] == [(3, True), (3, True)]
    same(sides, "get", "k/1", "k/3")  # a range [k/1, k/3)
    same(sides, "get", "", "--from-key", "--keys-only")
    # --rev: the state after the third write (k/1 still "a").
    at = [json.loads(s.ctl("get", "k/", "--prefix", f"--rev={s.rev(3)}", "-w", "json"))
          for s in sides]
    past = [kvs_relative(s, json.dumps(doc)) for s, doc in zip(sides, at, strict=True)]
    assert past[0] == past[1]
    full = [kvs_relative(s, s.ctl("get", "k/", "--prefix", "-w", "json")) for s in sides]
    assert full[0] == full[1]
    assert same(sides, "del", "k/", "--prefix") == "3\n"
    assert same(sides, "get", "k/", "--prefix") == ""
    assert same(sides, "del", "nothing") == "0\n"


def test_txn_interactive_input(sides: tuple[Side, Side]) -> None:
    same(sides, "put", "t/1", "a")
    script = 'value("t/1") = "a"\n\nput t/2 "x"\nget t/1\n\nput t/3 "y"\n\n'
    assert same(sides, "txn", input=script) == "SUCCESS\n\nOK\n\nt/1\na\n"
    script = 'mod("t/1") > "0"\nversion("t/9") = "1"\n\nput t/2 "no"\n\nput t/3 "y"\n\n'
    assert same(sides, "txn", input=script) == "FAILURE\n\nOK\n"
    same(sides, "get", "t/", "--prefix")
    # etcd's txn rules: a key written twice is refused with etcd's message.
    errors = [_txn_error(s) for s in sides]
    assert errors[0] == errors[1]


def _txn_error(side: Side) -> str:
    out = etcdctl(side.leader, "txn", input='\nput t/d "1"\nput t/d "2"\n\n\n')
    assert out.returncode != 0
    return out.stderr.strip().splitlines()[-1]


def _watch(side: Side, *args: str, lines: int, timeout: float = 20.0) -> list[str]:
    from tests.etcd.clusters import ETCDCTL

    assert ETCDCTL is not None
    proc = subprocess.Popen(
        [ETCDCTL, f"--endpoints={side.all}", "watch", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    got: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while len(got) < lines and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            got.append(line)
    finally:
        proc.kill()
        proc.wait()
    return got


def test_watch_history_with_prev_kv(sides: tuple[Side, Side]) -> None:
    for args in (("put", "w/1", "a"), ("put", "w/1", "b"), ("del", "w/1")):
        both(sides, *args)
    first = [json.loads(s.ctl("get", "w/", "--prefix", "-w", "json"))["header"]["revision"]
             for s in sides]
    seen = [_watch(s, "w/", "--prefix", f"--rev={int(r) - 2}", "--prev-kv", lines=8)
            for s, r in zip(sides, first, strict=True)]
    assert seen[1] == seen[0]
    assert seen[1][:3] == ["PUT\n", "w/1\n", "a\n"]


def test_lease_grant_keepalive_timetolive_revoke_and_expiry(sides: tuple[Side, Side]) -> None:
    for side in sides:
        out = side.ctl("lease", "grant", "60")
        m = re.fullmatch(r"lease ([0-9a-f]+) granted with TTL\(60s\)\n", out)
        assert m, out
        lease = m.group(1)
        assert side.ctl("put", "--lease", lease, "l/1", "v") == "OK\n"
        ttl = side.ctl("lease", "timetolive", lease, "--keys")
        assert re.fullmatch(
            rf"lease {lease} granted with TTL\(60s\), remaining\((5[0-9]|60)s\), "
            r"attached keys\(\[l/1\]\)\n", ttl), ttl
        assert side.ctl("lease", "keep-alive", "--once", lease) == (
            f"lease {lease} keepalived with TTL(60)\n")
        assert lease in side.ctl("lease", "list")
        assert side.ctl("lease", "revoke", lease) == f"lease {lease} revoked\n"
        assert side.ctl("get", "l/1") == ""
        assert side.ctl("lease", "timetolive", lease) == f"lease {lease} already expired\n"
        # Expiry: a short lease nobody keeps alive takes its key with it.
        short = side.ctl("lease", "grant", "2").split()[1]
        side.ctl("put", "--lease", short, "l/2", "v")
        # Linearizable reads: a serializable one may hit a member that has not
        # applied the put yet and end the wait early.
        wait_until(f"{side.name}: l/2 to go with its lease",
                   lambda s=side: s.ctl("get", "l/2") == "", 20, interval=0.2)  # fmt: skip


def test_member_list_endpoint_status_and_health(sides: tuple[Side, Side]) -> None:
    for side in sides:
        members = json.loads(side.ctl("member", "list", "-w", "json", leader=False))
        assert len(members["members"]) == 3
        ids = {m["ID"] for m in members["members"]}
        status = json.loads(side.ctl("endpoint", "status", "-w", "json", leader=False))
        assert len(status) == 3
        leaders = {row["Status"]["leader"] for row in status}
        assert len(leaders) == 1 and leaders <= ids
        assert {row["Status"]["header"]["member_id"] for row in status} == ids
        for row in status:
            st = row["Status"]
            assert st["raftTerm"] >= 1 and st["raftIndex"] >= st.get("raftAppliedIndex", 0) - 5
            assert st["version"].startswith("3.4.")
        out = etcdctl(side.all, "endpoint", "health")
        health = out.stdout + out.stderr  # etcdctl 3.4 prints health on stderr
        assert out.returncode == 0
        assert health.count("is healthy: successfully committed proposal") == 3
    tables = [s.ctl("member", "list", "-w", "table", leader=False).splitlines()[1] for s in sides]
    columns = [[c.strip() for c in t.split("|")] for t in tables]
    assert columns[0] == columns[1]  # the same columns


def test_compaction_and_reads_before_it(sides: tuple[Side, Side]) -> None:
    outs = [s.ctl("compaction", s.rev(2)) for s in sides]
    assert outs == [f"compacted revision {s.rev(2)}\n" for s in sides]
    errors = [s.fails("get", "base", f"--rev={s.rev(1)}") for s in sides]
    assert errors[0] == errors[1] == "Error: etcdserver: mvcc: required revision has been compacted"
    again = [s.fails("compaction", s.rev(2)) for s in sides]
    assert again[0] == again[1]


def test_snapshot_save(sides: tuple[Side, Side], tmp_path: Path) -> None:
    for side in sides:
        path = tmp_path / f"{side.name}.db"
        out = etcdctl(side.leader, "snapshot", "save", str(path))
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"Snapshot saved at {path}\n"
        assert path.stat().st_size % 512 == 32  # the SHA-256 trailer etcdctl checks


def test_move_leader(sides: tuple[Side, Side]) -> None:
    for side in sides:
        status = json.loads(side.ctl("endpoint", "status", "-w", "json", leader=False))
        leader = status[0]["Status"]["leader"]
        target = next(r["Status"]["header"]["member_id"] for r in status
                      if r["Status"]["header"]["member_id"] != leader)
        out = side.ctl("move-leader", format(target, "x"))
        assert out == f"Leadership transferred from {leader:x} to {target:x}\n"
        side.leader = leader_endpoint(side.endpoints)


def test_writes_and_lease_calls_through_a_follower(sides: tuple[Side, Side]) -> None:
    """etcd clients never re-send a write elsewhere: a follower must forward it."""
    outs = []
    for side in sides:
        f = side.follower()
        run = [side.ctl("put", "f/1", "a", at=f), side.ctl("put", "f/2", "b", at=f),
               side.ctl("txn", at=f, input='value("f/1") = "a"\n\nput f/3 "c"\n\n\n'),
               side.ctl("del", "f/2", at=f), side.ctl("get", "f/", "--prefix", at=f)]
        lease = side.ctl("lease", "grant", "60", at=f).split()[1]
        run.append(side.ctl("put", "--lease", lease, "f/l", "v", at=f))
        assert side.ctl("lease", "keep-alive", "--once", lease, at=f) == (
            f"lease {lease} keepalived with TTL(60)\n")
        ttl = side.ctl("lease", "timetolive", lease, "--keys", at=f)
        assert re.fullmatch(rf"lease {lease} granted with TTL\(60s\), remaining\((5[0-9]|60)s\), "
                            r"attached keys\(\[f/l\]\)\n", ttl), ttl
        assert side.ctl("lease", "revoke", lease, at=f) == f"lease {lease} revoked\n"
        run.append(side.ctl("get", "f/l", at=f))
        rev = json.loads(side.ctl("get", "f/1", "-w", "json", at=f))["header"]["revision"]
        run.append(side.ctl("compaction", str(rev), at=f).replace(str(rev), "REV"))
        # Membership through a follower: a learner that never starts, then removed.
        added = side.ctl("member", "add", "ghost", "--learner",
                         f"--peer-urls=http://127.0.0.1:{free_ports(1)[0]}", "-w", "json", at=f)
        ghost = json.loads(added)["member"]["ID"]
        members = json.loads(side.ctl("member", "list", "-w", "json", at=f))["members"]
        assert any(m["ID"] == ghost and m.get("isLearner") for m in members)
        removed = side.ctl("member", "remove", format(ghost, "x"), at=f)
        run.append(re.sub(r"\s+[0-9a-f]+", " ID", removed))  # ids are %16x-padded hex
        outs.append(run)
    assert outs[1] == outs[0]
    assert outs[1][:5] == ["OK\n", "OK\n", "SUCCESS\n\nOK\n", "1\n", "f/1\na\nf/3\nc\n"]


def test_member_list_names_client_and_peer_urls_apart(sides: tuple[Side, Side]) -> None:
    """Members publish their client URLs; with separate peer ports they differ from peer URLs."""
    for side in sides:
        members = json.loads(side.ctl("member", "list", "-w", "json", leader=False))["members"]
        clients = sorted(u for m in members for u in m["clientURLs"])
        assert clients == sorted(f"http://{e}" for e in side.endpoints), side.name
        peers = {u for m in members for u in m["peerURLs"]}
        assert len(peers) == 3 and not peers & set(clients), side.name
        assert all(m["name"] for m in members), side.name


def test_native_client_learns_the_leaders_client_address(sides: tuple[Side, Side]) -> None:
    """Given only a follower, the native client reaches the leader at its client port."""
    nexus = sides[1]
    follower = nexus.follower()
    with SyncClient([follower], timeout=15.0) as client:
        info = client.status()
        assert info.is_leader and f"{info.leader_address}" == nexus.leader
        assert sorted(u for m in info.members for u in m.client_urls) == sorted(
            f"http://{e}" for e in nexus.endpoints)
        client.put("native/1", b"x")
        assert client.get("native/1") == b"x"


def test_aetcd_client_in_a_subprocess(sides: tuple[Side, Side]) -> None:
    """aetcd (PyPI) through a follower, run in its own process (its etcd stubs clash with ours)."""
    # Looked up, not imported: importing aetcd here would put etcd's symbols
    # into this process's default descriptor pool for every later test.
    if importlib.util.find_spec("aetcd") is None:
        pytest.skip("aetcd is a test dependency (pip install -e .[test])")
    driver = Path(__file__).with_name("aetcd_driver.py")
    seen = []
    for side in sides:
        out = subprocess.run([sys.executable, str(driver), side.follower()],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{side.name}: {out.stderr}"
        doc = json.loads(out.stdout)
        doc.pop("first_revision")
        seen.append(doc)
    assert seen[1] == seen[0]
    assert seen[1]["txn"] == [True, ["two"]] and not seen[1]["txn_failed"]
    assert seen[1]["events"] == [["PUT", "ae/1", "one"], ["PUT", "ae/2", "two"],
                                 ["PUT", "ae/3", "three"], ["DELETE", "ae/2", ""]]
    assert seen[1]["lease_keys"] == ["ae/leased"] and seen[1]["leased_after_revoke"] is None
