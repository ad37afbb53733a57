"""The TLS and peer-port flags of nexus-node, nexus-witness and nexusctl: each
mistake is refused with one line and exit status 2, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from nexus_raft.cli import ctl, node, witness
from tests.transport.certs import MemberPki

BASE = ["--id", "1", "--listen", "127.0.0.1:1", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2",
        "--data-dir"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pki = MemberPki()
    d = tmp_path_factory.mktemp("certs")
    cert, key = pki.write(d, "member1", pki.member(1))
    (d / "junk.pem").write_text("not a certificate\n")
    return {
        "cert": str(cert),
        "key": str(key),
        "ca": str(pki.write_ca(d)),
        "junk": str(d / "junk.pem"),
        "missing": str(d / "missing.pem"),
    }


def _cases(f: dict[str, str]) -> list[tuple[list[str], str]]:
    peer = ["--peer-cert", f["cert"], "--peer-key", f["key"], "--peer-ca", f["ca"]]
    return [
        (["--cert", f["cert"]], "--cert and --key must be given together"),
        (["--ca", f["ca"]], "need --cert and --key"),
        (["--cert", f["cert"], "--key", f["key"], "--client-cert-auth"], "needs --ca"),
        (["--cert", f["missing"], "--key", f["key"]], "cannot read"),
        (["--cert", f["junk"], "--key", f["key"]], "not a PEM file"),
        (peer[:4], "must be given together"),
        (peer, "need --peer-listen"),
        ([*peer, "--peer-listen", "127.0.0.1:1"], "need --peer-listen"),  # the same port
        (["--peer-listen", "nowhere"], "--peer-listen"),
        (["--peer-identity", "member-{id}"], "identity template"),
    ]


@pytest.mark.parametrize("prog", ["nexus-node", "nexus-witness"])
def test_member_tls_flag_mistakes_are_one_line_errors(
    prog: str, files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = node.main if prog == "nexus-node" else witness.main
    for extra, needle in _cases(files):
        assert main([*BASE, str(tmp_path / "d"), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), (extra, err)
        assert needle in err[0], (extra, err)
    assert not (tmp_path / "d").exists()  # nothing was written


def test_nexusctl_tls_flag_mistakes_are_one_line_errors(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for extra, needle in [
        (["--cert", files["cert"]], "--cert and --key must be given together"),
        (["--ca", files["missing"]], "cannot read"),
        (["--ca", files["junk"]], "not a PEM file"),
    ]:
        assert ctl.main(["--endpoints", "127.0.0.1:1", *extra, "get", "k"]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (extra, err)


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pki = MemberPki()
    d = tmp_path_factory.mktemp("pairs")
    cert1, key1 = pki.write(d, "member1", pki.member(1))
    _, key2 = pki.write(d, "member2", pki.member(2))
    ca = pki.write_ca(d)
    return {"cert": str(cert1), "key": str(key1), "other_key": str(key2), "ca": str(ca)}


def test_a_key_that_is_not_the_certificates_is_refused_before_anything_starts(
    mismatched: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = mismatched
    member_cases = [
        (["--cert", f["cert"], "--key", f["other_key"]], "is not the private key of --cert"),
        (["--cert", f["key"], "--key", f["cert"]], "not a PEM certificate and its unencrypted"),
        (["--cert", f["cert"], "--key", f["key"], "--ca", f["key"]], "--ca"),
        (
            ["--peer-listen", "127.0.0.1:2", "--peer-cert", f["cert"],
             "--peer-key", f["other_key"], "--peer-ca", f["ca"]],
            "is not the private key of --peer-cert",
        ),
    ]
    for prog, main in (("nexus-node", node.main), ("nexus-witness", witness.main)):
        for extra, needle in member_cases:
            # gRPC would log its own lines, fail to bind, and the node would
            # already have bootstrapped its data directory.
            assert main([*BASE, str(tmp_path / "d"), *extra]) == 2, (prog, extra)
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), (extra, err)
            assert needle in err[0], (extra, err)
    assert not (tmp_path / "d").exists()
    code = ctl.main(["--endpoints", "127.0.0.1:1", "--timeout", "1", "--cert", f["cert"],
                     "--key", f["other_key"], "--ca", f["ca"], "get", "k"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "is not the private key of --cert" in err[0], err
