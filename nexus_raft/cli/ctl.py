"""``nexusctl``: talk to a nexus_raft cluster from the shell.

::

    nexusctl --endpoints 127.0.0.1:7001,127.0.0.1:7002 put users/alice hello
    nexusctl --endpoints 127.0.0.1:7001 get users/alice
    nexusctl --endpoints 127.0.0.1:7001 --json status

Any member will do: the client follows the leader. Output is for humans by
default and JSON (one document, or one line per watch event) with ``--json``.
Values are taken and printed as UTF-8 text; bytes that are not valid UTF-8
print as a Python bytes literal (``--json``: base64 under ``value_b64``).
Exit status: 0 success, 1 failure (including ``get`` of a missing key and a
``cas`` whose comparison failed), 2 bad arguments.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from nexus_raft.cli.common import (
    CliError,
    parse_endpoints,
    parse_member,
    run_app,
    setup_logging,
)
from nexus_raft.cli.tlsflags import client_tls
from nexus_raft.kv.client.client import Client
from nexus_raft.transport.tls import TLSConfig

__all__ = ["app", "main"]

_T = TypeVar("_T")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Talk to a nexus_raft cluster (any member; the leader is found automatically).",
)


@dataclass
class _Options:
    endpoints: list[str]
    json: bool
    timeout: float
    cluster_id: str | None
    tls: TLSConfig | None = None


def _opts(ctx: typer.Context) -> _Options:
    obj = ctx.find_root().obj
    assert isinstance(obj, _Options)
    return obj


def _call(ctx: typer.Context, work: Callable[[Client], Awaitable[_T]]) -> _T:
    """Run ``work`` with a connected client on a fresh event loop."""
    o = _opts(ctx)

    async def go() -> _T:
        async with Client(
            o.endpoints, timeout=o.timeout, cluster_id=o.cluster_id, tls=o.tls
        ) as client:
            return await work(client)

    return asyncio.run(go())


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)


def _json_value(data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {"value": None}
    try:
        return {"value": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"value_b64": base64.b64encode(data).decode("ascii")}


def _emit(ctx: typer.Context, human: str, data: dict[str, Any] | list[Any]) -> None:
    if _opts(ctx).json:
        typer.echo(json.dumps(data, sort_keys=True))
    elif human:
        typer.echo(human)


@app.callback()
def _root(
    ctx: typer.Context,
    endpoints: Annotated[
        str,
        typer.Option(
            envvar="NEXUS_ENDPOINTS", help="Members to contact: HOST:PORT[,HOST:PORT...]."
        ),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
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
    """Global options (before the command). Any of --cert/--key/--ca means TLS."""
    if timeout <= 0:
        raise typer.BadParameter("--timeout must be positive")
    ctx.obj = _Options(
        parse_endpoints(endpoints), json_output, timeout, cluster_id, client_tls(cert, key, ca)
    )
    setup_logging(log_level)


# --- key/value ------------------------------------------------------------------------


@app.command()
def put(ctx: typer.Context, key: str, value: str) -> None:
    """Set KEY to VALUE."""
    revision = _call(ctx, lambda c: c.put(key, value.encode("utf-8")))
    _emit(ctx, f"OK revision {revision}", {"key": key, "revision": revision})


@app.command()
def get(
    ctx: typer.Context,
    key: str,
    serializable: Annotated[
        bool, typer.Option(help="Read the member's local copy (may be stale).")
    ] = False,
) -> None:
    """Print the value of KEY (exit 1 if it does not exist)."""
    value, revision = _call(ctx, lambda c: c.get_with_revision(key, serializable=serializable))
    _emit(
        ctx,
        _text(value) if value is not None else "",
        {"key": key, "found": value is not None, "revision": revision, **_json_value(value)},
    )
    if value is None:
        raise CliError(f"key {key!r} not found")


@app.command()
def delete(ctx: typer.Context, key: str) -> None:
    """Delete KEY."""
    existed = _call(ctx, lambda c: c.delete(key))
    _emit(ctx, "deleted" if existed else "not found", {"key": key, "deleted": existed})


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
    """Compare-and-swap KEY (exit 1 if the comparison fails)."""
    if (expected is None) == (not absent):
        raise typer.BadParameter("give exactly one of --expected VALUE or --absent")
    if (new is None) == (not delete_key):
        raise typer.BadParameter("give exactly one of --new VALUE or --delete")
    want = None if absent else (expected or "").encode("utf-8")
    to = None if delete_key else (new or "").encode("utf-8")
    swapped = _call(ctx, lambda c: c.cas(key, want, to))
    _emit(ctx, "swapped" if swapped else "comparison failed", {"key": key, "swapped": swapped})
    if not swapped:
        raise CliError(f"compare-and-swap on {key!r} failed: the current value differs")


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Key prefix.")] = "",
    limit: Annotated[int, typer.Option(min=0, help="At most this many keys (0: all).")] = 0,
) -> None:
    """List keys under PREFIX."""
    keys = _call(ctx, lambda c: c.list_keys(prefix, limit=limit))
    _emit(ctx, "\n".join(_text(k) for k in keys), [_text(k) for k in keys])


@app.command()
def prefixes(
    ctx: typer.Context, prefix: Annotated[str, typer.Argument(help="Key prefix.")] = ""
) -> None:
    """List the distinct next path segments under PREFIX."""
    found = _call(ctx, lambda c: c.get_prefixes(prefix))
    _emit(ctx, "\n".join(_text(p) for p in found), [_text(p) for p in found])


@app.command()
def watch(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Key prefix.")] = "",
    from_revision: Annotated[
        int, typer.Option(min=0, help="Replay history from this revision first.")
    ] = 0,
    count: Annotated[int, typer.Option(min=0, help="Stop after N events (0: never).")] = 0,
) -> None:
    """Print changes under PREFIX as they happen (Ctrl-C to stop)."""
    as_json = _opts(ctx).json

    async def follow(client: Client) -> None:
        seen = 0
        async with client.watch(prefix, start_revision=from_revision) as stream:
            async for event in stream:
                if as_json:
                    line = json.dumps(
                        {
                            "revision": event.revision,
                            "key": _text(event.key),
                            "deleted": event.deleted,
                            **_json_value(event.value),
                        },
                        sort_keys=True,
                    )
                elif event.value is None:
                    line = f"{event.revision} DELETE {_text(event.key)}"
                else:
                    line = f"{event.revision} PUT {_text(event.key)} {_text(event.value)}"
                typer.echo(line)
                sys.stdout.flush()
                seen += 1
                if count and seen >= count:
                    return

    _call(ctx, follow)


# --- cluster ----------------------------------------------------------------------------


def _members_table(members: list[Any]) -> str:
    rows = [("ID", "ADDRESS", "KIND", "ROLE", "MATCH", "PAYLOAD_FLOOR")]
    rows += [
        (str(m.id), m.address, m.kind, m.role or "-", str(m.match), str(m.payload_floor))
        for m in members
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@app.command()
def status(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option(help="Ask this member instead of the leader.")
    ] = None,
) -> None:
    """Show the leader's (or one member's) view: role, term, indexes, members."""
    info = _call(ctx, lambda c: c.status(endpoint=endpoint))
    leader = f"{info.leader_id} ({info.leader_address})" if info.leader_id else "unknown"
    human = "\n".join(
        [
            f"member     {info.id} at {info.endpoint} ({info.role})",
            f"cluster    {info.cluster_id}",
            f"leader     {leader}",
            f"term       {info.term}",
            f"commit     {info.commit}  applied {info.applied}  last {info.last_index}",
            f"revision   {info.revision}",
            "",
            _members_table(list(info.members)),
        ]
    )
    _emit(ctx, human, info.to_dict())


@app.command()
def members(ctx: typer.Context) -> None:
    """List the members with their kinds and roles."""
    found = _call(ctx, lambda c: c.members())
    _emit(ctx, _members_table(found), [m.to_dict() for m in found])


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


@app.command()
def snapshot(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option(help="Snapshot this member instead of the leader.")
    ] = None,
) -> None:
    """Take a snapshot now (compacts the log); prints its index."""
    index = _call(ctx, lambda c: c.snapshot(endpoint=endpoint))
    _emit(ctx, f"snapshot at index {index}", {"index": index})


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``nexusctl``)."""
    return run_app(app, "nexusctl", argv)


if __name__ == "__main__":
    sys.exit(main())
