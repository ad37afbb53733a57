"""NodeAddress parsing (pure logic)."""

from __future__ import annotations

import pytest

from nexus_raft.transport import NodeAddress


@pytest.mark.parametrize(
    ("endpoint", "host", "port", "tls", "target"),
    [
        ("127.0.0.1:7001", "127.0.0.1", 7001, False, "127.0.0.1:7001"),
        ("http://node-a.example:80", "node-a.example", 80, False, "node-a.example:80"),
        ("https://localhost:7443", "localhost", 7443, True, "localhost:7443"),
        ("HTTPS://localhost:7443/", "localhost", 7443, True, "localhost:7443"),
        ("[::1]:9000", "::1", 9000, False, "[::1]:9000"),
        ("https://[fe80::1]:1", "fe80::1", 1, True, "[fe80::1]:1"),
    ],
)
def test_valid_endpoints(endpoint: str, host: str, port: int, tls: bool, target: str) -> None:
    addr = NodeAddress(1, endpoint)
    assert (addr.host, addr.port, addr.tls, addr.target) == (host, port, tls, target)


@pytest.mark.parametrize(
    "endpoint",
    [
        "", "127.0.0.1", "127.0.0.1:", ":7001", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:70x", "ftp://host:1", "grpc://host:1", "host name:1", "-bad:1",
        "[::1:1", "[nope]:1", "::1:7001", "http://host:1/path",
    ],
)
def test_invalid_endpoints_raise_value_error(endpoint: str) -> None:
    with pytest.raises(ValueError):
        NodeAddress(1, endpoint)


def test_node_id_and_type_checks() -> None:
    with pytest.raises(TypeError, match="node_id"):
        NodeAddress("1", "127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="node_id"):
        NodeAddress(True, "127.0.0.1:1")
    with pytest.raises(ValueError, match="node_id"):
        NodeAddress(0, "127.0.0.1:1")
    with pytest.raises(TypeError, match="endpoint"):
        NodeAddress(1, b"127.0.0.1:1")  # type: ignore[arg-type]


def test_same_destination_ignores_scheme_spelling() -> None:
    a = NodeAddress(1, "127.0.0.1:7001")
    assert a.same_destination(NodeAddress(1, "http://127.0.0.1:7001"))
    assert not a.same_destination(NodeAddress(1, "https://127.0.0.1:7001"))
    assert not a.same_destination(NodeAddress(1, "127.0.0.1:7002"))
    assert not a.same_destination(NodeAddress(2, "127.0.0.1:7001"))
