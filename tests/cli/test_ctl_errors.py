"""``nexusctl`` against something that is not a member's client port: one plain line.

A real gRPC server with no services stands in for a member's peer port (it
answers every KV call ``UNIMPLEMENTED``, as a peer port does).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from nexus_raft.cli import ctl


@pytest.fixture
def no_kv_api() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.mark.parametrize("command", [["status"], ["put", "k", "v"], ["get", "k"]])
def test_nexusctl_pointed_at_a_port_without_the_client_api_says_so(
    no_kv_api: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEXUS_ENDPOINTS", raising=False)
    assert ctl.main(["--endpoints", no_kv_api, "--timeout", "1", *command]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("nexusctl: error: "), err
    assert no_kv_api in err[0] and "does not serve the client API" in err[0], err
    assert "UNIMPLEMENTED" not in err[0] and "unimplemented" not in err[0], err
