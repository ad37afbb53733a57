"""Pieces shared by the command-line programs: argument parsing, logging, exits.

Every program runs its typer app through :func:`run_app`, which turns any
usage error or deliberate :class:`~nexus_raft.errors.NexusRaftError` into one
line on stderr (``nexusctl: error: ...``) and a non-zero exit status, never a
traceback: exit 2 for bad arguments, 1 for a failed operation, 3 for a member that was
removed from its cluster, 130 on Ctrl-C.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from nexus_raft.errors import NexusRaftError
from nexus_raft.transport.address import parse_endpoint

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_REMOVED",
    "EXIT_USAGE",
    "LOG_LEVELS",
    "CliError",
    "config_message",
    "fail",
    "parse_endpoints",
    "parse_member",
    "parse_peers",
    "run_app",
    "setup_logging",
]

EXIT_FAILURE = 1
"""Exit status of an operation that failed (cluster unreachable, key missing, ...)."""

EXIT_USAGE = 2
"""Exit status of bad command-line arguments (also: a data directory or initial
configuration that contradicts the cluster's, see ``IdentityMismatch``)."""

EXIT_REMOVED = 3
"""Exit status of a member that was removed from its cluster and stopped."""

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (SIGINT), as shells report a process it stopped."""

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""Values accepted by ``--log-level``."""


class CliError(Exception):
    """A command failed in a way that deserves one line and an exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command with ``message`` (one line) and exit status ``code``."""
    raise CliError(message, code)


def _check_endpoint(text: str, what: str) -> str:
    try:
        parse_endpoint(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{what}: {exc}") from None
    return text


def parse_peers(text: str) -> dict[int, str]:
    """``1=127.0.0.1:7001,2=127.0.0.1:7002`` -> ``{1: "127.0.0.1:7001", 2: ...}``.

    Raises ``typer.BadParameter`` naming the bad item.
    """
    peers: dict[int, str] = {}
    try:
        for item in (p.strip() for p in text.split(",")):
            if not item:
                continue
            node_id, address = parse_member(item)
            if node_id in peers:
                raise typer.BadParameter(f"member id {node_id} appears twice")
            peers[node_id] = address
        if not peers:
            raise typer.BadParameter("expected ID=HOST:PORT[,ID=HOST:PORT...]")
    except typer.BadParameter as exc:
        raise typer.BadParameter(exc.message, param_hint="'--peers'") from None
    return peers


def parse_member(text: str) -> tuple[int, str]:
    """``3=127.0.0.1:7003`` -> ``(3, "127.0.0.1:7003")``; ``typer.BadParameter`` otherwise."""
    node_id_text, sep, address = text.strip().partition("=")
    if not sep or not node_id_text.strip().isdigit() or int(node_id_text) <= 0:
        raise typer.BadParameter(f"{text!r} is not ID=HOST:PORT with a positive integer ID")
    return int(node_id_text), _check_endpoint(address.strip(), f"member {node_id_text}")


def parse_endpoints(text: str, flag: str | None = None) -> list[str]:
    """``a:1,b:2`` -> ``["a:1", "b:2"]``, each checked; ``typer.BadParameter`` otherwise.

    ``flag``: the option the text came from, named in the error.
    """
    try:
        endpoints = [
            _check_endpoint(e, "endpoint") for e in (p.strip() for p in text.split(",")) if e
        ]
        if not endpoints:
            raise typer.BadParameter("expected HOST:PORT[,HOST:PORT...]")
    except typer.BadParameter as exc:
        if flag is None:
            raise
        message = exc.message.removeprefix("endpoint: ")
        raise typer.BadParameter(message, param_hint=f"'{flag}'") from None
    return endpoints


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(level: str, *, json_lines: bool = False) -> None:
    """Log to stderr at ``level`` (one of :data:`LOG_LEVELS`), as text or JSON lines."""
    if level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if json_lines:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    # grpc's own loggers are noisy at debug level and say nothing ours do not.
    logging.getLogger("grpc").setLevel(max(logging.WARNING, logging.getLogger().level))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# NodeConfig's field names -> the flags that set them, for its error messages.
_FLAGS = {
    "election_ticks": "--election-ticks",
    "heartbeat_ticks": "--heartbeat-ticks",
    "snapshot_every": "--snapshot-every",
    "keep_entries": "--keep-entries",
    "metrics_listen": "--metrics-listen",
    "peer_listen": "--peer-listen",
    "peer_identity": "--peer-identity",
    "advertise_client": "--advertise-client",
    "cluster_id": "--cluster-id",
    "witnesses": "--witness",
    "learners": "--learner",
    "peers": "--peers",
    "peer_tls": "--peer-cert/--peer-key",
    "tls": "--cert/--key",
    "name": "--name",
}
_FIELD = re.compile(r"(?<![\w-])(" + "|".join(_FLAGS) + r")(?![\w-])")
_INT_LIST = re.compile(r"\[(\d+(?:, \d+)*)\]")
_NOT_IN_PEERS = re.compile(r"(--witness|--learner) ([\d, ]+) are not in --peers")


def config_message(text: str) -> str:
    """A configuration error as a command-line user reads it: flags, not field names.

    ``NodeConfig`` names its fields (``election_ticks must be >= 3``) and
    prints id lists as Python lists; the programs say ``--election-ticks``
    and ``5, 6`` instead.
    """
    text = text.replace("(or set join=True)", "(or use --join HOST:PORT)")
    text = text.replace("join=True", "--join").replace(" (None: share listen)", "")
    text = _INT_LIST.sub(r"\1", _FIELD.sub(lambda m: _FLAGS[m.group(1)], text))
    return _NOT_IN_PEERS.sub(r"\1 \2: not a member of --peers", text)


def one_line(text: str) -> str:
    """``text`` as the single line a program prints for an error."""
    return _one_line(text)


def _missing_command(exc: Exception, message: str) -> str:
    """click's "Missing command." with the commands that would do, and where help is."""
    ctx = getattr(exc, "ctx", None)
    commands = getattr(getattr(ctx, "command", None), "commands", None)
    if not message.startswith("Missing command") or not commands or ctx is None:
        return message
    path = ctx.command_path
    return f"missing command: {' | '.join(sorted(commands))} (see {path} --help)"


def run_app(app: typer.Typer, prog: str, argv: Sequence[str] | None = None) -> int:
    """Run ``app`` like a console script; return the exit status.

    Usage errors and ``NexusRaftError`` become one line on stderr (no
    traceback, no usage box) and a non-zero status. ``--version`` prints the
    version; ``--json``, ``-w json|table`` and the root options may stand
    anywhere (:mod:`nexus_raft.cli.args`).
    """
    from nexus_raft.cli.args import UsageError, normalize, wants_version
    from nexus_raft.consensus.node.observe import package_version

    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    if wants_version(args):
        print(f"{prog} {package_version()}")
        return 0
    try:
        args = normalize(command, args)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = command.main(args=args, prog_name=prog, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.code
    except NexusRaftError as exc:
        # The reason alone: the exception's class is an internal name.
        reason = _one_line(str(exc)) or "the operation failed"
        print(f"{prog}: error: {reason}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        # Usage errors: click's (older typer) or typer's vendored click's
        # exceptions; both carry format_message() and exit_code (2 for usage).
        format_message = getattr(exc, "format_message", None)
        exit_code = getattr(exc, "exit_code", None)
        if not callable(format_message) or not isinstance(exit_code, int):
            raise
        message = _missing_command(exc, _one_line(str(format_message())))
        if message:  # empty when the usage/help text was already printed
            print(f"{prog}: error: {message}", file=sys.stderr)
        return exit_code or EXIT_USAGE
    if result == EXIT_INTERRUPTED:
        # Commands return None; typer itself turns Ctrl-C into this result
        # (older versions raised Abort, above), and says nothing.
        print(f"{prog}: interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0
