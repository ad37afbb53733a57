"""Argument handling of nexus-node and nexusctl, in-process.

Every bad invocation must exit non-zero (2 for usage) with exactly one line
on stderr. These run the programs' ``main(argv)`` directly; the process
tests in tests/integration check the real executables end to end.
"""

from __future__ import annotations

import pytest
import typer

from nexus_raft.cli import ctl, node
from nexus_raft.cli.common import parse_endpoints, parse_member, parse_peers

BASE = ["--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1", "--data-dir", "d"]


def one_line_error(capsys: pytest.CaptureFixture[str], prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--id", "1"], "--listen"),
        (["--bogus"], "--bogus"),
        ([*BASE[:1], "x", *BASE[2:]], "--id"),
        ([*BASE[:5], "1=nowhere", *BASE[6:]], "nowhere"),
        ([*BASE[:5], "1:127.0.0.1:1", *BASE[6:]], "ID=HOST:PORT"),
        ([*BASE[:5], "1=127.0.0.1:1,1=127.0.0.1:2", *BASE[6:]], "twice"),
        ([*BASE[:1], "4", *BASE[2:]], "peers"),
        ([*BASE[:1], "0", *BASE[2:]], "--id"),
        ([*BASE, "--witness", "7"], "witness"),
        ([*BASE, "--witness", "1"], "full"),
        ([*BASE, "--tick-ms", "0"], "tick"),
        ([*BASE, "--election-ticks", "1"], "election_ticks"),
        ([*BASE, "--log-level", "loud"], "log-level"),
        ([*BASE[:3], "nowhere", *BASE[4:]], "nowhere"),
        ([*BASE, "--event-loop", "fast"], "--event-loop"),
        ([*BASE, "--learner", "1"], "full"),
        ([*BASE, "--learner", "7"], "learners"),
        ([*BASE, "--join", "127.0.0.1:2"], "not both"),
        ([*BASE[:4], *BASE[6:]], "--join HOST:PORT"),
        ([*BASE[:4], *BASE[6:], "--join", "nowhere"], "nowhere"),
        ([*BASE[:4], *BASE[6:], "--join", "127.0.0.1:2", "--join-as", "boss"], "--join-as"),
        ([*BASE[:4], *BASE[6:], "--join", "127.0.0.1:2", "--promote-lag", "-1"], "promote-lag"),
    ],
)
def test_nexus_node_rejects_bad_arguments(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.main(args) == 2
    assert needle in one_line_error(capsys, "nexus-node")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["get", "k"], "--endpoints"),
        (["--endpoints", "nowhere", "get", "k"], "nowhere"),
        (["--endpoints", "127.0.0.1:1", "frobnicate"], "frobnicate"),
        (["--endpoints", "127.0.0.1:1", "get"], "'key'"),
        (["--endpoints", "127.0.0.1:1", "cas", "k", "--new", "v"], "--expected"),
        (["--endpoints", "127.0.0.1:1", "cas", "k", "--absent"], "--new"),
        (["--endpoints", "127.0.0.1:1", "add-member", "4-127.0.0.1:9"], "ID=HOST:PORT"),
        (["--endpoints", "127.0.0.1:1", "add-member", "4=h:9", "--learner", "--witness"], "excl"),
        (["--endpoints", "127.0.0.1:1", "remove-member", "zero"], "'ID'"),
        (["--endpoints", "127.0.0.1:1", "--timeout", "0", "status"], "--timeout"),
        (["--endpoints", "127.0.0.1:1", "--log-level", "loud", "status"], "log-level"),
    ],
)
def test_nexusctl_rejects_bad_arguments(
    args: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEXUS_ENDPOINTS", raising=False)
    assert ctl.main(args) == 2
    assert needle in one_line_error(capsys, "nexusctl")


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--help"]) == 0
    assert "put" in capsys.readouterr().out
    assert node.main(["--help"]) == 0
    assert "--peers" in capsys.readouterr().out


def test_peer_list_parsing() -> None:
    assert parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002,") == {
        1: "127.0.0.1:7001",
        2: "127.0.0.1:7002",
    }
    assert parse_member("3=localhost:9") == (3, "localhost:9")
    assert parse_endpoints("a:1,http://b:2") == ["a:1", "http://b:2"]
    for bad in ("", "1", "x=h:1", "-1=h:1", "1=h", "1=h:0", "1=h:1,1=h:2"):
        with pytest.raises(typer.BadParameter):
            parse_peers(bad)
