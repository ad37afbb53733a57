"""``nexus-node``: run one member of a replicated KV cluster.

::

    nexus-node --id 1 --listen 127.0.0.1:7001 \\
        --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\
        --data-dir /var/lib/nexus/1

The node serves the client KV API (``nexusctl``,
:class:`~nexus_raft.kv.client.client.Client`) on ``--listen`` and Raft peer
traffic on ``--peer-listen`` (by default the same address: fine on a laptop;
in production give peers their own port, firewall it, and put mutual TLS on
it with ``--peer-cert/--peer-key/--peer-ca``; then ``--peers`` names each
member's peer address). ``--cert/--key`` put TLS on the client port,
``--client-cert-auth`` with ``--ca`` makes it mutual.
A follower forwards writes and admin calls to the leader (``--redirect``:
it answers NOT_LEADER and the client goes to the leader itself).
A member listed with ``--witness ID`` runs without a state machine (votes and
metadata only); ``--join`` starts a member that is being added to a running
cluster (it waits for the leader instead of bootstrapping). Each member
publishes ``--name`` and its client address (``--advertise-client``, by
default ``--listen``) through the log, so every member can redirect clients
to it and list it (etcd's ``member list``). SIGTERM and SIGINT
shut the node down cleanly (pending proposals fail, the store is closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from nexus_raft.cli.common import (
    config_message,
    fail,
    one_line,
    parse_endpoints,
    parse_peers,
    run_app,
    setup_logging,
)
from nexus_raft.cli.loops import EVENT_LOOPS, run_on, uvloop_available
from nexus_raft.cli.member import (
    Joining,
    finish_join,
    joining_config,
    run_member,
    until_stopped,
)
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

_log = logging.getLogger("nexus_raft.cli.node")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Run one member of a nexus_raft replicated KV cluster.",
)


@app.command()
def run(
    node_id: Annotated[int, typer.Option("--id", help="This member's id (a key of --peers).")],
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to serve clients on (and peers, without --peer-listen).")
    ],
    data_dir: Annotated[Path, typer.Option(help="Directory for this member's store.")],
    peers: Annotated[
        str | None,
        typer.Option(
            help="Initial members incl. this one: 1=HOST:PORT,2=HOST:PORT,... (a new cluster; "
            "use --join to join a running one)."
        ),
    ] = None,
    witness: Annotated[
        list[int] | None, typer.Option(help="Mark a member of --peers as a witness (repeatable).")
    ] = None,
    learner: Annotated[
        list[int] | None,
        typer.Option(help="Mark a member of --peers as a non-voting learner (repeatable)."),
    ] = None,
    cluster_id: Annotated[
        str | None,
        typer.Option(
            help="Cluster id (default: derived from the initial configuration; after the "
            "first start the data directory's recorded id is used, and a different one "
            "is refused)."
        ),
    ] = None,
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            metavar="HOST:PORT[,HOST:PORT]",
            help="Join the running cluster these members belong to (any member will do): "
            "learn its id and members, be added, catch up, be promoted.",
        ),
    ] = None,
    join_as: Annotated[
        str, typer.Option(help="With --join: become a voter, a learner or a witness.")
    ] = "voter",
    promote_lag: Annotated[
        int,
        typer.Option(
            help="With --join as a voter: promote once at most this many entries behind the "
            "leader."
        ),
    ] = 100,
    redirect: Annotated[
        bool,
        typer.Option(
            "--redirect",
            help="Answer writes on a follower with NOT_LEADER (the client re-sends to the "
            "leader) instead of forwarding them to the leader.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    json_output: Annotated[
        bool, typer.Option("--json", help="Log JSON objects, one per line (also: -w json).")
    ] = False,
    tick_ms: Annotated[float, typer.Option(help="Raft tick interval in milliseconds.")] = 20.0,
    election_ticks: Annotated[
        int, typer.Option(help="Election timeout in ticks (randomised up to 2x).")
    ] = 10,
    heartbeat_ticks: Annotated[int, typer.Option(help="Heartbeat interval in ticks.")] = 2,
    snapshot_every: Annotated[
        int, typer.Option(help="Take a snapshot and compact every N applied entries.")
    ] = 10_000,
    keep_entries: Annotated[
        int, typer.Option(help="Log entries kept behind a snapshot for slow followers.")
    ] = 5_000,
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
    name: Annotated[
        str | None, typer.Option(help="This member's name (default: nexus-ID).")
    ] = None,
    advertise_client: Annotated[
        str | None,
        typer.Option(
            help="[http(s)://]HOST:PORT clients reach this member at (default: --listen; "
            "needed when --listen is 0.0.0.0 or behind NAT)."
        ),
    ] = None,
    etcd_progress_interval: Annotated[
        float,
        typer.Option(help="Seconds between etcd watch progress notifications (etcd: 600)."),
    ] = 600.0,
    event_loop: Annotated[
        str,
        typer.Option(
            help="auto (uvloop when installed), asyncio or uvloop; shown by nexusctl status."
        ),
    ] = "auto",
) -> None:
    """Start the member and serve until SIGTERM/SIGINT."""
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.errors import ConfigError
    from nexus_raft.transport.ports import check_listen

    if event_loop not in EVENT_LOOPS:
        raise typer.BadParameter(f"--event-loop must be one of {', '.join(EVENT_LOOPS)}")
    if event_loop == "uvloop" and not uvloop_available():
        fail("--event-loop uvloop: uvloop is not installed (pip install 'nexus-raft[uvloop]')")
    if (peers is None) == (join is None):
        fail(
            "give --peers (the initial members of a new cluster) or --join HOST:PORT (a member "
            "of a running cluster), not both"
            if peers is not None
            else "give --peers (the initial members of a new cluster) or --join HOST:PORT (a "
            "member of a running cluster)"
        )
    from nexus_raft.kv.join import JOIN_ROLES

    if join_as not in JOIN_ROLES:
        raise typer.BadParameter(f"--join-as must be one of {', '.join(JOIN_ROLES)}")
    if promote_lag < 0:
        raise typer.BadParameter("--promote-lag must be >= 0")
    seeds = parse_endpoints(join, "--join") if join is not None else None
    peer_map = parse_peers(peers) if peers is not None else {node_id: peer_listen or listen}
    parse_endpoints(listen, "--listen")
    if metrics_listen is not None:
        parse_endpoints(metrics_listen, "--metrics-listen")
    if peer_listen is not None:
        parse_endpoints(peer_listen, "--peer-listen")
    tls = server_tls(cert, key, ca, client_cert_auth)
    ptls = peer_tls(peer_cert, peer_key, peer_ca)
    if ptls is not None and (peer_listen is None or peer_listen == listen):
        fail("--peer-cert/--peer-key/--peer-ca need --peer-listen (a port of their own)")
    if node_id <= 0:
        raise typer.BadParameter("--id must be a positive integer")
    if not 1 <= tick_ms <= 10_000:
        raise typer.BadParameter("--tick-ms must be between 1 and 10000 (milliseconds)")
    try:
        config = NodeConfig(
            id=node_id,
            listen=listen,
            peers=peer_map,
            data_dir=data_dir,
            witnesses=frozenset(witness or ())
            | ({node_id} if seeds is not None and join_as == "witness" else frozenset()),
            learners=frozenset(learner or ()),
            cluster_id=cluster_id,
            tick_interval=tick_ms / 1000.0,
            election_ticks=election_ticks,
            heartbeat_ticks=heartbeat_ticks,
            snapshot_every=snapshot_every,
            keep_entries=keep_entries,
            join=seeds is not None,
            metrics_listen=metrics_listen,
            peer_listen=peer_listen,
            tls=tls,
            peer_tls=ptls,
            peer_identity=peer_identity,
            name=name,
            advertise_client=advertise_client,
        )
    except (ConfigError, TypeError, ValueError) as exc:
        fail(config_message(str(exc)))
    setup_logging(log_level, json_lines=json_output)
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
    if not etcd_progress_interval > 0:
        raise typer.BadParameter("--etcd-progress-interval must be positive")
    joining = None
    if seeds is not None:
        joining = Joining(seeds, join_as, promote_lag, client_tls(cert, key, ca))
    run_member(
        lambda: run_on(
            event_loop,
            serve(
                config,
                etcd_progress_interval=etcd_progress_interval,
                forward=not redirect,
                joining=joining,
            ),
        )
    )


async def serve(
    config: object,
    *,
    etcd_progress_interval: float = 600.0,
    forward: bool = True,
    joining: Joining | None = None,
) -> None:
    """Run a node for ``config`` (a ``NodeConfig``) until SIGTERM/SIGINT, then shut it down.

    ``forward``: followers forward writes and admin calls to the leader
    (False: they answer NOT_LEADER and the client goes to the leader).
    ``joining``: join a running cluster (see :mod:`nexus_raft.cli.member`).
    """
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.consensus.node.node import RaftNode
    from nexus_raft.kv.etcd.api import EtcdAPI
    from nexus_raft.kv.service.kv import KVService
    from nexus_raft.kv.state_machine import KVStateMachine

    assert isinstance(config, NodeConfig)
    if joining is not None:
        config = await joining_config(config, joining)
    state_machine = None if config.is_witness else KVStateMachine()
    node = RaftNode(config, state_machine)
    # Registered explicitly (also on a witness) so clients always find the KV
    # API on the listen port: a witness answers NOT_LEADER with the leader.
    # The cluster id is read from the node per request: the data directory's
    # recorded identity, known once the node has started.
    node.add_servicer(KVService(node, forward=forward).register)
    # etcd's v3 API on the same port (a witness answers its membership and status).
    node.add_servicer(EtcdAPI(node, progress_interval=etcd_progress_interval).register)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    _log.info(
        "member %d serving on %s (cluster %s%s)",
        config.id,
        config.listen,
        node.cluster_id,
        ", witness" if config.is_witness else "",
    )
    join_task = (
        asyncio.ensure_future(finish_join(config, joining, node, stop))
        if joining is not None
        else None
    )
    try:
        await until_stopped(node, stop, join_task)
        if node.halted is None and node.failure is None:
            _log.info("member %d shutting down", config.id)
    finally:
        if join_task is not None:
            join_task.cancel()
        await node.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if node.failure is not None:
        # A member that cannot write its data exits (status 1) rather than
        # serve a state it can no longer keep; restart it once fixed. It
        # leaves at once, with its one line: the event loop's teardown would
        # cancel gRPC's leftover RPC tasks, which gRPC reports with a
        # traceback after that line (the node is already shut down).
        print(f"nexus-node: error: {one_line(node.failure)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        logging.shutdown()
        os._exit(1)
    _log.info("member %d stopped", config.id)
    if node.halted is not None:
        raise node.halted.error


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``nexus-node``; ``nexus-node restore ...`` restores)."""
    from nexus_raft.cli.node_restore import app as restore_app

    args = list(sys.argv[1:] if argv is None else argv)
    first = _first_word(args, (app, restore_app))
    if first is not None and args[first] == "restore":
        return run_app(restore_app, "nexus-node", args[:first] + args[first + 1 :])
    return run_app(app, "nexus-node", args)


def _first_word(args: list[str], apps: tuple[typer.Typer, ...]) -> int | None:
    """Index of the first argument that is neither an option nor an option's value.

    ``nexus-node --id 1 restore FILE ...``: ``1`` is the value of ``--id``,
    so the subcommand is ``restore`` wherever the options stand.
    """
    takes_value = {"-w", "--write-out"}
    for one in apps:
        for param in typer.main.get_command(one).params:
            if getattr(param, "param_type_name", "") == "option" and not (
                getattr(param, "is_flag", False) or getattr(param, "count", False)
            ):
                takes_value.update(param.opts)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return i
        i += 2 if arg in takes_value else 1
    return None


if __name__ == "__main__":
    sys.exit(main())
