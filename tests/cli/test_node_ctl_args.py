"""Argument handling of nexus-node and nexusctl, in-process.

Every bad invocation must exit non-zero (2 for usage) with exactly one line
on stderr. These run the programs' ``main(argv)`` directly; the process
tests in tests/integration check the real executables end to end.
"""

from __future__ import annotations

import pytest
import typer

from nexus_raft.cli import ctl, node, store, witness
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
        ([*BASE, "--election-ticks", "1"], "--election-ticks"),
        ([*BASE, "--log-level", "loud"], "log-level"),
        ([*BASE[:3], "nowhere", *BASE[4:]], "nowhere"),
        ([*BASE, "--event-loop", "fast"], "--event-loop"),
        ([*BASE, "--learner", "1"], "full"),
        ([*BASE, "--learner", "7"], "--learner"),
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


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([*BASE[:1], "4", *BASE[2:]], "--peers must include this node's id 4 (or use --join"),
        ([*BASE, "--election-ticks", "1"], "--election-ticks must be >= 3"),
        ([*BASE, "--heartbeat-ticks", "0"], "--heartbeat-ticks must be >= 1"),
        ([*BASE, "--snapshot-every", "0"], "--snapshot-every must be >= 1"),
        ([*BASE, "--keep-entries", "-1"], "--keep-entries must be >= 0"),
        ([*BASE, "--witness", "7", "--witness", "8"], "--witness 7, 8: not a member of --peers"),
        ([*BASE, "--learner", "7"], "--learner 7: not a member of --peers"),
        ([*BASE, "--advertise-client", "ftp://x:1"], "--advertise-client: unsupported scheme"),
        ([*BASE, "--name", ""], "--name must be 1 to 256 characters"),
        ([*BASE, "--tick-ms", "20000"], "--tick-ms must be between 1 and 10000"),
        ([*BASE[:3], "127.0.0.1", *BASE[4:]], "'--listen': invalid endpoint '127.0.0.1'"),
        ([*BASE, "--metrics-listen", "xx"], "'--metrics-listen': invalid endpoint 'xx'"),
        ([*BASE, "--peer-listen", "xx"], "'--peer-listen': invalid endpoint 'xx'"),
        ([*BASE[:5], "1=nowhere", *BASE[6:]], "'--peers': member 1: invalid endpoint"),
    ],
)
def test_configuration_errors_name_the_flags_not_python_fields(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.main(args) == 2
    line = one_line_error(capsys, "nexus-node")
    assert needle in line, line
    for internal in ("_ticks", "snapshot_every", "keep_entries", "advertise_client", "join=True",
                     "witnesses", "learners", "[", "tick_interval"):  # fmt: skip
        assert internal not in line, line


def test_witness_configuration_errors_name_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--id", "3", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2",
            "--data-dir", "d"]  # fmt: skip
    assert witness.main(args) == 2
    line = one_line_error(capsys, "nexus-witness")
    assert "--peers" in line and "--join" in line and "join=True" not in line, line


@pytest.mark.parametrize(
    ("program", "args", "needle"),
    [
        ("nexusctl", ["--endpoints", "127.0.0.1:1"], "missing command: add-member | cas"),
        ("nexusctl", ["--endpoints", "127.0.0.1:1", "endpoint"],
         "missing command: health | status (see nexusctl endpoint --help)"),
        ("nexus-store", ["some/dir"], "missing command: get | scan | set | stats | trees"),
        ("nexus-store", [], "Missing argument 'path'"),
    ],
)
def test_a_command_line_without_its_command_is_one_line_not_a_help_page(
    program: str, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main = {"nexusctl": ctl.main, "nexus-store": store.main}[program]
    assert main(args) == 2
    assert needle in one_line_error(capsys, program)
    assert capsys.readouterr().out == ""


def test_a_failed_operation_prints_its_reason_without_the_exception_class(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEXUS_ENDPOINTS", raising=False)
    assert ctl.main(["--endpoints", "127.0.0.1:1", "--timeout", "0.5", "get", "k"]) == 1
    line = one_line_error(capsys, "nexusctl")
    assert "127.0.0.1:1" in line and "unreachable" in line, line
    assert "Unavailable:" not in line and "Error:" not in line, line


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
