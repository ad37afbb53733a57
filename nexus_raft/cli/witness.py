"""``nexus-witness``: run the vote-only member of a 2+1 cluster.

::

    nexus-witness --id 3 --listen 127.0.0.1:7003 \\
        --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\
        --data-dir /var/lib/nexus/witness

The full members are started with the same ``--peers`` and ``--witness 3``.
The witness serves a data-less KV API (status; every read or write is
redirected to the leader) on ``--listen`` and peer traffic on
``--peer-listen`` (default: the same address). The TLS flags are those of
``nexus-node``: ``--cert/--key[/--ca --client-cert-auth]`` for the client
port, ``--peer-cert/--peer-key/--peer-ca`` (mutual TLS) for the peer port.

Output: human status lines on stdout (``--json``: one JSON object per line
with an ``event`` field: ``started``, ``change`` when role, term or leader
change, ``status`` every ``--status-interval`` seconds, ``stopped``); logs
go to stderr at ``--log-level``. SIGTERM and SIGINT shut down cleanly. Bad
arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nexus_raft.cli.common import (
    config_message,
    fail,
    parse_endpoints,
    parse_peers,
    run_app,
    setup_logging,
)
from nexus_raft.cli.member import Joining, finish_join, joining_config, run_member
from nexus_raft.cli.tlsflags import (
    CaOpt,
    CertOpt,
    ClientCertAuthOpt,
    KeyOpt,
    PeerCaOpt,
    PeerCertOpt,
    PeerIdentityOpt,
    PeerKeyOpt,
    PeerListenOpt,
    client_tls,
    peer_tls,
    server_tls,
)
from nexus_raft.transport.identity import DEFAULT_TEMPLATE

__all__ = ["app", "main", "serve"]

_log = logging.getLogger("nexus_raft.cli.witness")

# How often the witness's role/term/leader are checked for a "change" line
# (the check is cheap: the core's status, no disk walk).
_POLL_SECONDS = 0.05

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Run the witness (vote-only member) of a nexus_raft cluster.",
)


@app.command()
def run(
    node_id: Annotated[int, typer.Option("--id", help="This witness's id (a key of --peers).")],
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to serve clients on (and peers, without --peer-listen).")
    ],
    data_dir: Annotated[Path, typer.Option(help="Directory for the witness's metadata log.")],
    peers: Annotated[
        str | None,
        typer.Option(
            help="Initial members incl. this one: 1=HOST:PORT,2=HOST:PORT,... (a new cluster; "
            "use --join to join a running one)."
        ),
    ] = None,
    witness: Annotated[
        list[int] | None,
        typer.Option(help="Another member of --peers that is a witness too (repeatable)."),
    ] = None,
    cluster_id: Annotated[
        str | None, typer.Option(help="Cluster id (default: derived from --peers).")
    ] = None,
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            metavar="HOST:PORT[,HOST:PORT]",
            help="Join the running cluster these members belong to as a witness (any member "
            "will do): learn its id and members, be added.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print status lines as JSON objects.")
    ] = False,
    status_interval: Annotated[
        float, typer.Option(help="Seconds between periodic status lines (0: changes only).")
    ] = 10.0,
    tick_ms: Annotated[float, typer.Option(help="Raft tick interval in milliseconds.")] = 20.0,
    election_ticks: Annotated[
        int, typer.Option(help="Election timeout in ticks (randomised up to 2x).")
    ] = 10,
    heartbeat_ticks: Annotated[int, typer.Option(help="Heartbeat interval in ticks.")] = 2,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT for Prometheus /metrics and /health, /livez, /readyz."),
    ] = None,
    peer_listen: PeerListenOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    ca: CaOpt = None,
    client_cert_auth: ClientCertAuthOpt = False,
    peer_cert: PeerCertOpt = None,
    peer_key: PeerKeyOpt = None,
    peer_ca: PeerCaOpt = None,
    peer_identity: PeerIdentityOpt = DEFAULT_TEMPLATE,
) -> None:
    """Start the witness and serve until SIGTERM/SIGINT."""
    from nexus_raft.errors import ConfigError
    from nexus_raft.transport.ports import check_listen
    from nexus_raft.witness.config import witness_config

    if (peers is None) == (join is None):
        fail(
            "give --peers (the initial members of a new cluster) or --join HOST:PORT (a member "
            "of a running cluster)" + (", not both" if peers is not None else "")
        )
    seeds = parse_endpoints(join, "--join") if join is not None else None
    peer_map = parse_peers(peers) if peers is not None else {node_id: peer_listen or listen}
    parse_endpoints(listen, "--listen")
    if peer_listen is not None:
        parse_endpoints(peer_listen, "--peer-listen")
    if metrics_listen is not None:
        parse_endpoints(metrics_listen, "--metrics-listen")
    tls = server_tls(cert, key, ca, client_cert_auth)
    ptls = peer_tls(peer_cert, peer_key, peer_ca)
    if ptls is not None and (peer_listen is None or peer_listen == listen):
        fail("--peer-cert/--peer-key/--peer-ca need --peer-listen (a port of their own)")
    if node_id <= 0:
        raise typer.BadParameter("--id must be a positive integer")
    if not 1 <= tick_ms <= 10_000:
        raise typer.BadParameter("--tick-ms must be between 1 and 10000 (milliseconds)")
    if status_interval < 0:
        raise typer.BadParameter("--status-interval must be >= 0")
    try:
        config = witness_config(
            id=node_id,
            listen=listen,
            peers=peer_map,
            data_dir=data_dir,
            witnesses=witness or (),
            cluster_id=cluster_id,
            tick_interval=tick_ms / 1000.0,
            election_ticks=election_ticks,
            heartbeat_ticks=heartbeat_ticks,
            join=seeds is not None,
            peer_listen=peer_listen,
            metrics_listen=metrics_listen,
            tls=tls,
            peer_tls=ptls,
            peer_identity=peer_identity,
        )
    except (ConfigError, TypeError, ValueError) as exc:
        fail(config_message(str(exc)))
    setup_logging(log_level)
    # A taken port is refused before the data directory is touched.
    check_listen(listen)
    if peer_listen is not None and peer_listen != listen:
        check_listen(peer_listen, "--peer-listen")
    if metrics_listen is not None:
        check_listen(metrics_listen, "--metrics-listen")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create --data-dir {data_dir}: {exc.strerror or exc}", 1)
    joining = Joining(seeds, "witness", tls=client_tls(cert, key, ca)) if seeds else None
    run_member(
        lambda: asyncio.run(
            serve(config, json_output=json_output, status_interval=status_interval,
                  joining=joining)
        )
    )


class _Printer:
    """Status lines on stdout: human text or one JSON object per line."""

    def __init__(self, as_json: bool) -> None:
        self._json = as_json

    def emit(self, event: str, status: Any | None, text: str = "") -> None:
        if self._json:
            record: dict[str, Any] = {"event": event}
            if status is not None:
                record.update(status.to_dict())
            if text:
                record["message"] = text
            line = json.dumps(record, sort_keys=True)
        elif status is not None:
            line = f"[{event}] {status.describe()}"
        else:
            line = f"[{event}] {text}"
        print(line, flush=True)


async def serve(
    config: object,
    *,
    json_output: bool = False,
    status_interval: float = 10.0,
    joining: Joining | None = None,
) -> None:
    """Run a witness for ``config`` until SIGTERM/SIGINT, printing status lines.

    ``joining``: join a running cluster first (see :mod:`nexus_raft.cli.member`).
    """
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.witness.node import WitnessNode

    assert isinstance(config, NodeConfig)
    if joining is not None:
        config = await joining_config(config, joining)
    out = _Printer(json_output)
    witness = WitnessNode(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    join_task: asyncio.Future[None] | None = None
    try:
        await witness.start()
        if joining is not None:
            join_task = asyncio.ensure_future(finish_join(config, joining, witness.node, stop))
        status = witness.status()
        out.emit("started", status)
        seen = (status.role, status.term, status.leader_id)
        last_line = loop.time()
        while not stop.is_set() and witness.node.halted is None:
            try:
                await asyncio.wait_for(stop.wait(), _POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            node = witness.node
            if stop.is_set() or node.failure is not None or node.halted is not None:
                break
            if join_task is not None and join_task.done() and not join_task.cancelled():
                error = join_task.exception()
                if error is not None:
                    raise error
            view = witness.node.status()
            now = loop.time()
            key = (str(view.role), view.term, view.leader_id or None)
            if key != seen:
                seen = key
                last_line = now
                out.emit("change", witness.status())
            elif status_interval > 0 and now - last_line >= status_interval:
                last_line = now
                out.emit("status", witness.status())
        if witness.node.halted is None:
            _log.info("witness %d shutting down", config.id)
    finally:
        if join_task is not None:
            join_task.cancel()
        await witness.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    failure = witness.node.failure
    if failure is not None:
        # It cannot write its metadata log (a full disk): exit 1, one line.
        out.emit("failed", None, failure)
        fail(failure, 1)
    halt = witness.node.halted
    out.emit("stopped", None, f"witness {config.id} stopped" + (f": {halt.reason}" if halt else ""))
    if halt is not None:
        raise halt.error


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``nexus-witness``)."""
    return run_app(app, "nexus-witness", argv)


if __name__ == "__main__":
    sys.exit(main())
