"""The node's HTTP endpoint for monitoring: ``/metrics``, ``/health``, ``/livez``, ``/readyz``.

A deliberately small HTTP/1.1 server on the node's own event loop (so a
scrape reads the node's state on the thread that changes it, never
concurrently): one GET or HEAD per connection, answered and closed. Paths:

* ``/metrics``: Prometheus text exposition of the node's registry;
* ``/livez``: 200 while the node's driver runs (a failed or stopped node: 503);
* ``/readyz``: 200 once a leader is known and everything up to the commit
  index seen at start-up (the leader's, learned by a read-index round) is
  applied, else 503 with the reason;
* ``/health``: etcd's shape, ``{"health": "true"|"false", "reason": ...}``,
  200 when healthy (a leader is known, no errors) else 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from nexus_raft.consensus.node.status import NodeStatus
from nexus_raft.errors import ConfigError, NexusRaftError
from nexus_raft.transport.address import parse_endpoint

__all__ = ["MetricsServer", "Probe", "probe"]

_log = logging.getLogger(__name__)

_MAX_REQUEST = 8192
_READ_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's answer: HTTP status, content type, body."""

    status: int
    content_type: str
    body: bytes


def _text(status: int, text: str) -> Probe:
    return Probe(status, "text/plain; charset=utf-8", (text + "\n").encode())


def probe(path: str, status: Callable[[], NodeStatus], registry: CollectorRegistry) -> Probe:
    """The answer for ``path`` (see the module docstring); 404 for anything else."""
    if path == "/metrics":
        return Probe(200, CONTENT_TYPE_LATEST, generate_latest(registry))
    try:
        st: NodeStatus | None = status()
        down = ""
    except NexusRaftError as exc:
        st, down = None, str(exc)
    if path == "/livez":
        return _text(200, "ok") if st is not None else _text(503, f"not live: {down}")
    if path == "/readyz":
        if st is None:
            return _text(503, f"not ready: {down}")
        if not st.has_leader:
            return _text(503, "not ready: no leader")
        if not st.caught_up:
            return _text(503, "not ready: learning the leader's commit index (read index)")
        if st.applied < st.startup_commit:
            return _text(
                503, f"not ready: applied {st.applied} of the {st.startup_commit} seen at start-up"
            )
        return _text(200, "ok")
    if path == "/health":
        reasons = [down] if st is None else list(st.errors)
        if st is not None and not st.has_leader and "no leader" not in reasons:
            reasons.append("no leader")
        ok = not reasons
        body = json.dumps({"health": "true" if ok else "false", "reason": "; ".join(reasons)})
        return Probe(200 if ok else 503, "application/json", (body + "\n").encode())
    return _text(404, "not found: try /metrics, /health, /livez or /readyz")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}  # fmt: skip


class MetricsServer:
    """Serves :func:`probe` answers on ``listen`` (``host:port``, port 0: any free port)."""

    def __init__(
        self, listen: str, status: Callable[[], NodeStatus], registry: CollectorRegistry
    ) -> None:
        try:
            host, port, tls = parse_endpoint(listen, allow_port_zero=True)
        except ValueError as exc:
            raise ConfigError(f"metrics listen address: {exc}") from None
        if tls:
            raise ConfigError("the metrics endpoint speaks plain HTTP: give host:port")
        self._host = host
        self.port = port
        self._status = status
        self._registry = registry
        self._server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the bound server."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> int:
        """Bind and serve; returns the port. ``OSError`` if the address is taken."""
        self._server = await asyncio.start_server(
            self._serve, self._host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        _log.info("metrics and health on %s/metrics", self.endpoint)
        return self.port

    async def stop(self) -> None:
        """Stop serving. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            answer, method = self._answer(head)
            reason = _REASONS.get(answer.status, "")
            lines = [
                f"HTTP/1.1 {answer.status} {reason}",
                f"Content-Type: {answer.content_type}",
                f"Content-Length: {len(answer.body)}",
                "Connection: close",
                "",
                "",
            ]
            writer.write("\r\n".join(lines).encode("latin-1"))
            if method != "HEAD":
                writer.write(answer.body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):  # fmt: skip
            pass  # a client that does not send a request gets nothing
        except Exception:
            _log.exception("metrics endpoint failed to answer")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[Probe, str]:
        if len(head) > _MAX_REQUEST:
            return _text(400, "request too large"), "GET"
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _text(400, "bad request"), "GET"
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return _text(405, "only GET and HEAD"), method
        path = target.split("?", 1)[0]
        return probe(path, self._status, self._registry), method
