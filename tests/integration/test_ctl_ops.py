"""``nexusctl`` as an operator uses it, against real ``nexus-node`` processes.

Endpoint status and health with a member down, members with health columns,
status with and without a quorum, ``--json``/``-w`` anywhere, ``--version``,
values from stdin and binary values, deterministic errors answered at once,
and a taken port refused before the data directory is touched.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import REPO_ROOT, ProcessCluster, free_ports, next_event, wait_until

pytestmark = pytest.mark.process


def run(module: str, *args: str, stdin: bytes | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=REPO_ROOT,
    )


def ctl(cluster: ProcessCluster, *args: str, stdin: bytes | None = None,
        endpoints: str | None = None) -> subprocess.CompletedProcess[bytes]:
    eps = endpoints or ",".join(cluster.endpoints())
    return run("nexus_raft.cli.ctl", "--endpoints", eps, *args, stdin=stdin)


def ok_json(result: subprocess.CompletedProcess[bytes]) -> object:
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def test_endpoint_status_and_health_with_one_member_down(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    leader = cluster.wait_for_leader()
    cluster.client().put("k", b"v")
    down = next(i for i in cluster.members if i != leader)
    cluster.members[down].kill()
    down_address = cluster.members[down].address
    # One live endpoint is enough: the others are learned from the membership.
    alive = cluster.members[leader].address
    rows = ok_json(ctl(cluster, "endpoint", "status", "--json", endpoints=alive))
    assert isinstance(rows, list)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {1, 2, 3}
    assert by_id[down]["state"] == "down" and by_id[down]["errors"][0]
    assert by_id[leader]["is_leader"] is True
    for i, r in by_id.items():
        if i == down:
            continue
        assert r["state"] == "up" and r["kind"] == "voter" and r["version"]
        assert r["term"] >= 1 and r["applied"] >= 1 and r["db_size"] > 0
        assert r["errors"] == []
        assert r["lag"] is not None and r["last_contact"] is not None
    table = ctl(cluster, "endpoint", "status", endpoints=alive)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["ENDPOINT", "ID", "STATE"]
    assert any(down_address in line and " down " in line for line in lines)

    health = ctl(cluster, "-w", "json", "endpoint", "health", endpoints=alive)
    assert health.returncode == 1  # one member is unhealthy
    rows = json.loads(health.stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id[down]["health"] is False and by_id[down]["error"]
    # A refused connection is known at once: one attempt, not retries until
    # the 2 s probe timeout (every such command took 2.5-3.3 s before).
    assert by_id[down]["took_seconds"] < 1.0, by_id[down]
    for i in by_id:
        if i != down:
            assert by_id[i]["health"] is True and 0 < by_id[i]["took_seconds"] < 2
    assert "unhealthy" in health.stderr.decode() and down_address in health.stderr.decode()

    members = ok_json(ctl(cluster, "members", "--json"))
    assert isinstance(members, list)
    health_of = {m["id"]: m["health"] for m in members}
    wait_until(
        "the leader to see the member as down",
        lambda: {m["id"]: m["health"] for m in ok_json(ctl(cluster, "members", "--json"))}[down]
        == "down",  # type: ignore[index]
        15,
    )
    assert health_of[leader] == "up"
    text = ctl(cluster, "members").stdout.decode()
    assert "HEALTH" in text and "LAST CONTACT" in text and "LAG" in text

    status = ctl(cluster, "status")
    assert status.returncode == 0 and "quorum     ok (2 of 3 voters up)" in status.stdout.decode()
    # Lose the quorum: status says so.
    other = next(i for i in cluster.members if i not in (leader, down))
    cluster.members[other].kill()
    wait_until(
        "status to report no quorum",
        lambda: "NO QUORUM" in ctl(cluster, "status").stdout.decode(),
        30,
    )


def test_json_anywhere_version_stdin_and_binary_values(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    put = ok_json(ctl(cluster, "put", "bin/key", "--json", stdin=b"\x00\xff raw\n"))
    assert isinstance(put, dict) and put["revision"] > 0
    got = ok_json(ctl(cluster, "get", "bin/key", "-w", "json"))
    assert isinstance(got, dict)
    assert got["encoding"] == "base64" and got["value"] == "AP8gcmF3Cg=="
    text = ok_json(ctl(cluster, "-w=json", "put", "txt", "hello"))
    assert isinstance(text, dict)
    same = ok_json(ctl(cluster, "get", "txt", "--json"))
    assert same == {**same, "value": "hello", "encoding": "utf-8"}  # type: ignore[dict-item]
    human = ctl(cluster, "get", "bin/key")
    assert human.stdout == b"\\x00\\xff raw\\x0a\n"
    assert ctl(cluster, "-w", "table", "get", "txt").stdout == b"hello\n"
    bad = ctl(cluster, "-w", "yaml", "get", "txt")
    assert bad.returncode == 2 and bad.stderr.decode().count("\n") == 1
    for module, prog in (("nexus_raft.cli.ctl", "nexusctl"), ("nexus_raft.cli.node", "nexus-node"),
                         ("nexus_raft.cli.witness", "nexus-witness"),
                         ("nexus_raft.cli.store", "nexus-store")):
        version = run(module, "--version")
        assert version.returncode == 0 and version.stdout.decode().startswith(f"{prog} ")


def test_deterministic_errors_are_answered_at_once(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    cluster.client().put("k", b"v")
    eps = ",".join(cluster.endpoints())
    for args, needle in (
        (("remove-member", "9"), "not a member"),
        (("add-member", "1=127.0.0.1:1"), "already a voter"),
        (("transfer-leader", "9"), "node 9 is not a member"),
        (("cas", "k", "--expected", "other", "--new", "x"), "current value differs"),
        # --cluster-id: members of another cluster are refused, never used.
        (("--cluster-id", "nx-other", "put", "k", "x"), "request is for cluster 'nx-other'"),
    ):
        started = time.monotonic()
        result = run("nexus_raft.cli.ctl", "--endpoints", eps, "--timeout", "20", *args)
        took = time.monotonic() - started
        err = result.stderr.decode()
        assert result.returncode == 1, err
        assert needle in err and err.count("\n") == 1, err
        # No Python reprs (a bytes literal b'...'); a cluster id ending in "b"
        # followed by a quote is not one.
        assert "Batch" not in err and not re.search(r"(?<!\w)b'", err), err
        assert took < 10, f"{args} took {took:.1f}s: retried to the deadline?"
    # A learner is a member that cannot lead: the refusal says which it is.
    ctl_cmd = ("nexus_raft.cli.ctl", "--endpoints", eps, "--timeout", "20")
    added = run(*ctl_cmd, "add-member", "8=127.0.0.1:1", "--learner")
    assert added.returncode == 0, added.stderr
    refused = run(*ctl_cmd, "transfer-leader", "8")
    err = refused.stderr.decode()
    assert refused.returncode == 1 and err.count("\n") == 1, err
    assert "member 8 is a learner: only a full voter can lead" in err, err


def test_a_key_with_a_control_character_is_escaped_in_text_and_exact_in_json(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(1)
    assert ok_json(ctl(cluster, "put", "c/a\x01b/x", "v", "--json"))
    assert ctl(cluster, "prefixes", "c/").stdout == b"c/a\\x01b/\n"
    assert ok_json(ctl(cluster, "prefixes", "c/", "--json")) == ["c/a\x01b/"]
    assert ctl(cluster, "list", "c/").stdout == b"c/a\\x01b/x\n"
    assert ok_json(ctl(cluster, "list", "c/", "--json")) == [
        {"key": "c/a\x01b/x", "key_encoding": "utf-8"}
    ]
    got = ok_json(ctl(cluster, "get", "c/a\x01b/x", "--json"))
    assert isinstance(got, dict) and got["key"] == "c/a\x01b/x" and got["value"] == "v"


def test_a_member_at_another_members_address_is_refused_at_once(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3, spare=1)
    taken = cluster.members[2].address
    for args in (("add-member", f"9={taken}", "--learner"), ("add-member", f"9=http://{taken}")):
        started = time.monotonic()
        result = run("nexus_raft.cli.ctl", "--endpoints", ",".join(cluster.endpoints([1, 2, 3])),
                     "--timeout", "20", *args)  # fmt: skip
        took = time.monotonic() - started
        err = result.stderr.decode()
        assert result.returncode == 1 and err.count("\n") == 1, err
        assert f"{taken} is the address of member 2" in err, err
        assert took < 10, f"{args} took {took:.1f}s: retried to the deadline?"
    assert sorted(m.id for m in cluster.client().members()) == [1, 2, 3]
    # A machine that took a member's address (its member not removed) cannot
    # join under a new id: it is refused before it writes anything.
    cluster.members[2].kill()
    newcomer = cluster.members[4]
    data = newcomer.data_dir
    newcomer.start(["--id", "4", "--listen", taken, "--data-dir", str(data),
                    "--join", cluster.members[1].address])  # fmt: skip
    assert newcomer.proc is not None and newcomer.proc.wait(timeout=60) == 2
    assert f"{taken} is the address of member 2" in newcomer.log_tail(), newcomer.log_tail()
    assert not (data / "store").exists()
    assert sorted(m.id for m in cluster.client().members()) == [1, 2, 3]


def test_a_key_that_is_not_utf8_is_refused_in_one_line_without_a_python_repr(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(1)
    eps = ",".join(cluster.endpoints())
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("NEXUS_ENDPOINTS", None)
    for args in ([b"put", b"k\xff", b"v"], [b"get", b"k\xff", b"--json"], [b"delete", b"k\xff"],
                 [b"cas", b"k\xff", b"--absent", b"--new", b"x"], [b"list", b"\xff"],
                 [b"watch", b"\xff", b"--count", b"1"]):  # fmt: skip
        result = subprocess.run(
            [sys.executable.encode(), b"-m", b"nexus_raft.cli.ctl", b"--endpoints", eps.encode(),
             b"--timeout", b"20", *args],
            capture_output=True, timeout=60, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        err = result.stderr.decode()
        assert result.returncode == 1 and err.count("\n") == 1, (args, err)
        assert "must be valid UTF-8: '" in err and "\\xff'" in err, (args, err)
        assert "b'" not in err and "Traceback" not in err, (args, err)
    # Values need not be text: they are stored as given and printed escaped.
    assert ok_json(ctl(cluster, "put", "k", "--json", stdin=b"v\xfe"))
    assert ctl(cluster, "get", "k").stdout == b"v\\xfe\n"


@pytest.mark.parametrize(
    ("module", "taken"),
    [("nexus_raft.cli.node", "--listen"), ("nexus_raft.cli.node", "--peer-listen"),
     ("nexus_raft.cli.node", "--metrics-listen"), ("nexus_raft.cli.witness", "--listen"),
     ("nexus_raft.cli.witness", "--peer-listen"), ("nexus_raft.cli.witness", "--metrics-listen")],
)
def test_port_in_use_fails_before_the_data_directory_is_written(
    tmp_path: Path, module: str, taken: str
) -> None:
    ports = dict(zip(("--listen", "--peer-listen", "--metrics-listen"), free_ports(3), strict=True))
    address = {flag: f"127.0.0.1:{port}" for flag, port in ports.items()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[taken]))
        s.listen(1)
        data = tmp_path / "data"
        result = run(
            module, "--id", "1", "--peers", f"1={address['--peer-listen']},2=127.0.0.1:9",
            *[arg for flag, a in address.items() for arg in (flag, a)],
            "--data-dir", str(data),
        )  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.count("\n") == 1 and "address already in use" in err, err
    assert address[taken] in err, err
    assert not data.exists()


def test_prefix_reads_and_atomic_prefix_delete(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    client = cluster.client()
    for i in range(30):
        client.put(f"p/{i:02d}", b"v%d" % i)
    client.put("p/bin", b"\xff\x00")
    last = client.put("q/other", b"stays")
    rows = ok_json(ctl(cluster, "get", "p/", "--prefix", "--json"))
    assert isinstance(rows, list) and len(rows) == 31
    assert rows[0] == {**rows[0], "key": "p/00", "value": "v0", "encoding": "utf-8"}
    assert rows[-1]["key"] == "p/bin" and rows[-1]["encoding"] == "base64"
    text = ctl(cluster, "get", "p/0", "--prefix").stdout.decode().splitlines()
    assert text[:4] == ["p/00", "v0", "p/01", "v1"] and len(text) == 20
    keys = ctl(cluster, "get", "p/", "--prefix", "--keys-only", "--limit", "5").stdout
    assert keys.decode().splitlines() == [f"p/{i:02d}" for i in range(5)]
    assert ctl(cluster, "get", "p/", "--limit", "5").returncode == 2
    # The delete is one write: every key goes in the same revision.
    with client.watch("p/", start_revision=last + 1) as events:
        deleted = ok_json(ctl(cluster, "delete", "p/", "--prefix", "--json"))
        assert deleted == {"prefix": "p/", "prefix_encoding": "utf-8", "deleted": 31}
        revisions = {next_event(events).revision for _ in range(31)}
    assert len(revisions) == 1
    assert client.list_keys("p/") == [] and client.get("q/other") == b"stays"
    assert ok_json(ctl(cluster, "delete", "p/", "--prefix", "--json")) == {
        "prefix": "p/",
        "prefix_encoding": "utf-8",
        "deleted": 0,
    }


def test_one_live_endpoint_is_enough_the_client_learns_the_others(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    client = cluster.client([1], timeout=20.0)  # told about member 1 only
    client.put("a", b"1")
    everyone = {m.address for m in cluster.members.values()}
    wait_until("the client to learn every member", lambda: set(client.endpoints) == everyone, 15)
    cluster.members[1].kill()
    assert client.put("b", b"2") > 0  # through members it was never told about
    assert client.get("a") == b"1"
