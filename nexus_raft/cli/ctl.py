"""``nexusctl``: talk to a nexus_raft cluster from the shell.

::

    nexusctl --endpoints 127.0.0.1:7001,127.0.0.1:7002 put users/alice hello
    nexusctl --endpoints 127.0.0.1:7001 get users/alice
    nexusctl --endpoints 127.0.0.1:7001 status --json
    nexusctl endpoint status -w table

Any member will do: the client follows the leader and learns the other
members' addresses. Output is for humans by default and JSON (one document,
or one line per watch event) with ``--json`` or ``-w json``, which like every
global option may stand before or after the command. Keys and values print
as UTF-8 text with ``\\xNN`` escapes for anything else; in JSON a value is
always under ``"value"``, with ``"encoding": "utf-8"`` or ``"base64"``.
Exit status: 0 success, 1 failure (including ``get`` of a missing key and a
``cas`` whose comparison failed), 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from nexus_raft.cli.common import (
    CliError,
    parse_endpoints,
    parse_member,
    run_app,
    setup_logging,
)
from nexus_raft.cli.ctl_base import Options, call, emit, opts
from nexus_raft.cli.ctl_cluster import endpoint_app, members, status
from nexus_raft.cli.ctl_snapshot import snapshot_app
from nexus_raft.cli.output import json_bytes, safe_text
from nexus_raft.cli.tlsflags import client_tls
from nexus_raft.errors import Unavailable
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.types import WatchEvent

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Talk to a nexus_raft cluster (any member; the leader is found automatically).",
)
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(snapshot_app, name="snapshot")
app.command()(status)
app.command()(members)

# Kept for the commands below (and their history): the shared helpers.
_call = call
_emit = emit


@app.callback()
def _root(
    ctx: typer.Context,
    endpoints: Annotated[
        str,
        typer.Option(
            envvar="NEXUS_ENDPOINTS", help="Members to contact: HOST:PORT[,HOST:PORT...]."
        ),
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON (also: -w json). Anywhere on the line.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds before a command gives up.")] = 5.0,
    cluster_id: Annotated[
        str | None, typer.Option(help="Refuse members of another cluster.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "warning",
    cert: Annotated[
        Path | None, typer.Option("--cert", help="PEM client certificate (mutual TLS).")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="PEM private key of --cert.")] = None,
    ca: Annotated[
        Path | None, typer.Option("--ca", help="PEM CA that signs the members' certificates.")
    ] = None,
) -> None:
    """Global options (before or after the command). Any of --cert/--key/--ca means TLS."""
    if timeout <= 0:
        raise typer.BadParameter("--timeout must be positive")
    ctx.obj = Options(
        parse_endpoints(endpoints, "--endpoints"),
        json_output,
        timeout,
        cluster_id,
        {"tls": client_tls(cert, key, ca)},
    )
    setup_logging(log_level)


# --- key/value ------------------------------------------------------------------------


def _raw(text: str) -> bytes:
    """A key or prefix from the command line as the bytes the user typed.

    Arguments that are not valid UTF-8 reach Python with surrogate escapes;
    they go to the cluster as the original bytes.
    """
    return text.encode("utf-8", "surrogateescape")


def _read_value(value: str | None) -> bytes:
    """VALUE from the command line, or all of standard input for ``-`` / no VALUE."""
    if value is not None and value != "-":
        return value.encode("utf-8", "surrogateescape")
    if sys.stdin is None or sys.stdin.isatty():
        raise typer.BadParameter("give VALUE, or pipe the value into standard input")
    return sys.stdin.buffer.read()


@app.command()
def put(
    ctx: typer.Context,
    key: str,
    value: Annotated[
        str | None, typer.Argument(help="The value; omit it (or give -) to read standard input.")
    ] = None,
) -> None:
    """Set KEY to VALUE (or to what standard input holds)."""
    data = _read_value(value)
    raw = _raw(key)
    revision = call(ctx, lambda c: c.put(raw, data))
    emit(ctx, f"OK revision {revision}", {**json_bytes(raw, "key"), "revision": revision})


@app.command()
def get(
    ctx: typer.Context,
    key: str,
    serializable: Annotated[
        bool, typer.Option(help="Read the member's local copy (may be stale).")
    ] = False,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Every key starting with KEY, with its value.")
    ] = False,
    keys_only: Annotated[bool, typer.Option("--keys-only", help="Keys without values.")] = False,
    limit: Annotated[int, typer.Option(min=0, help="At most this many keys (0: all).")] = 0,
) -> None:
    """Print the value of KEY (exit 1 if it does not exist); --prefix: every key under KEY.

    With --prefix, text output is the key, then its value, on alternate lines
    (``--keys-only``: keys alone); JSON is a list of
    ``{"key", "value", "encoding", "revision"}``. One consistent read.
    """
    if (keys_only or limit) and not prefix:
        raise typer.BadParameter("--keys-only and --limit go with --prefix")
    raw = _raw(key)
    if prefix:
        rows = call(
            ctx,
            lambda c: c.range(raw, limit=limit, keys_only=keys_only, serializable=serializable),
        )
        lines: list[str] = []
        data = []
        for k, v, rev in rows:
            lines.append(safe_text(k))
            entry = {**json_bytes(k, "key"), "revision": rev}
            if not keys_only:
                lines.append(safe_text(v or b""))
                entry.update(json_bytes(v))
            data.append(entry)
        emit(ctx, "\n".join(lines), data)
        return
    value, revision = call(ctx, lambda c: c.get_with_revision(raw, serializable=serializable))
    emit(
        ctx,
        safe_text(value) if value is not None else "",
        {
            **json_bytes(raw, "key"),
            "found": value is not None,
            "revision": revision,
            **json_bytes(value),
        },
    )
    if value is None:
        raise CliError(f"key '{safe_text(raw)}' not found")


@app.command()
def delete(
    ctx: typer.Context,
    key: str,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Delete every key starting with KEY, atomically.")
    ] = False,
) -> None:
    """Delete KEY (--prefix: every key under KEY, in one write)."""
    raw = _raw(key)
    if prefix:
        count = call(ctx, lambda c: c.delete_prefix(raw))
        emit(ctx, f"deleted {count}", {**json_bytes(raw, "prefix"), "deleted": count})
        return
    existed = call(ctx, lambda c: c.delete(raw))
    emit(
        ctx,
        "deleted" if existed else "not found",
        {**json_bytes(raw, "key"), "deleted": existed},
    )


@app.command()
def cas(
    ctx: typer.Context,
    key: str,
    expected: Annotated[
        str | None, typer.Option(help="Current value required (omit with --absent).")
    ] = None,
    absent: Annotated[bool, typer.Option("--absent", help="Require KEY not to exist.")] = False,
    new: Annotated[str | None, typer.Option(help="Value to set on success.")] = None,
    delete_key: Annotated[
        bool, typer.Option("--delete", help="Delete KEY on success instead.")
    ] = False,
) -> None:
    """Compare-and-swap KEY (exit 1 at once if the comparison fails)."""
    if (expected is None) == (not absent):
        raise typer.BadParameter("give exactly one of --expected VALUE or --absent")
    if (new is None) == (not delete_key):
        raise typer.BadParameter("give exactly one of --new VALUE or --delete")
    want = None if absent else _raw(expected or "")
    to = None if delete_key else _raw(new or "")
    raw = _raw(key)
    swapped = call(ctx, lambda c: c.cas(raw, want, to))
    emit(
        ctx,
        "swapped" if swapped else "comparison failed",
        {**json_bytes(raw, "key"), "swapped": swapped},
    )
    if not swapped:
        raise CliError(f"compare-and-swap on '{safe_text(raw)}' failed: the current value differs")


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Key prefix.")] = "",
    limit: Annotated[int, typer.Option(min=0, help="At most this many keys (0: all).")] = 0,
) -> None:
    """List keys under PREFIX."""
    raw = _raw(prefix)
    keys = call(ctx, lambda c: c.list_keys(raw, limit=limit))
    emit(ctx, "\n".join(safe_text(k) for k in keys), [json_bytes(k, "key") for k in keys])


@app.command()
def prefixes(
    ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="Key prefix.")] = ""
) -> None:
    """List the distinct next path segments under PREFIX."""
    raw = _raw(prefix)
    found = call(ctx, lambda c: c.get_prefixes(raw))
    # Keys are UTF-8 (the members refuse others), so JSON carries each segment
    # exactly; text output escapes control characters so each stays one line.
    emit(
        ctx,
        "\n".join(safe_text(p) for p in found),
        [p.decode("utf-8", "backslashreplace") for p in found],
    )


def _event_line(event: WatchEvent, as_json: bool) -> str:
    revision, key, value = event.revision, event.key, event.value
    if as_json:
        return json.dumps(
            {
                "revision": revision,
                **json_bytes(key, "key"),
                "deleted": value is None,
                **json_bytes(value),
            },
            sort_keys=True,
        )
    if value is None:
        return f"{revision} DELETE {safe_text(key)}"
    return f"{revision} PUT {safe_text(key)} {safe_text(value)}"


@app.command()
def watch(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Key prefix.")] = "",
    from_revision: Annotated[
        int, typer.Option(min=0, help="Replay history from this revision first.")
    ] = 0,
    count: Annotated[int, typer.Option(min=0, help="Stop after N events (0: never).")] = 0,
) -> None:
    """Print changes under PREFIX as they happen, until interrupted (Ctrl-C).

    When no member can serve the watch the command says so on stderr and
    keeps retrying; it resumes after the last revision it printed.
    """
    as_json = opts(ctx).json

    async def follow(client: Client) -> None:
        seen = 0
        async with client.watch(_raw(prefix), start_revision=from_revision) as stream:
            while True:
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    return
                except Unavailable as exc:
                    print(f"nexusctl: watch: {exc}; still retrying", file=sys.stderr, flush=True)
                    continue
                typer.echo(_event_line(event, as_json))
                sys.stdout.flush()
                seen += 1
                if count and seen >= count:
                    return

    call(ctx, follow)


# --- cluster ----------------------------------------------------------------------------


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    member: Annotated[str, typer.Argument(help="ID=HOST:PORT of the new member.")],
    learner: Annotated[
        bool, typer.Option("--learner", help="Add as a non-voting learner.")
    ] = False,
    witness: Annotated[bool, typer.Option("--witness", help="Add as a witness.")] = False,
) -> None:
    """Add a member (a voter unless --learner/--witness; promotes an existing learner)."""
    if learner and witness:
        raise typer.BadParameter("--learner and --witness are exclusive")
    node_id, address = parse_member(member)
    role = "learner" if learner else "witness" if witness else "voter"
    _call(ctx, lambda c: c.add_member(node_id, address, role=role))
    _emit(ctx, f"added {role} {node_id} at {address}", {"id": node_id, "role": role})


@app.command("remove-member")
def remove_member(
    ctx: typer.Context, node_id: Annotated[int, typer.Argument(min=1, metavar="ID")]
) -> None:
    """Remove member ID."""
    _call(ctx, lambda c: c.remove_member(node_id))
    _emit(ctx, f"removed {node_id}", {"id": node_id, "removed": True})


@app.command("transfer-leader")
def transfer_leader(
    ctx: typer.Context, node_id: Annotated[int, typer.Argument(min=1, metavar="ID")]
) -> None:
    """Hand leadership to member ID."""
    _call(ctx, lambda c: c.transfer_leader(node_id))
    _emit(ctx, f"leadership transferred to {node_id}", {"leader": node_id})


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``nexusctl``)."""
    return run_app(app, "nexusctl", argv)


if __name__ == "__main__":
    sys.exit(main())
