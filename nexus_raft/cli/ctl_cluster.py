"""``nexusctl status``, ``members`` and ``endpoint status|health``: the cluster's health.

Every member is asked directly and concurrently, once (a member that
refuses the connection, or does not answer within ``min(--timeout, 2 s)``,
is shown as down at once); the list of members
comes from the membership (the leader's view when it answers), merged with
the ``--endpoints`` given, so one live endpoint is enough to see them all.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from nexus_raft.cli.common import CliError
from nexus_raft.cli.ctl_base import emit, new_client, opts, run
from nexus_raft.cli.output import duration, size, table
from nexus_raft.errors import ClusterMismatch, NexusRaftError
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.router import normalize_endpoint
from nexus_raft.kv.client.types import MemberInfo, NodeInfo

__all__ = ["endpoint_app", "members", "status"]

endpoint_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Each member's own view (status) or a read through each member (health).",
)

_PROBE_SECONDS = 2.0


def _reason(exc: BaseException, endpoint: str) -> str:
    """A failure in one line, without the member's address (the row already names it)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    text = text.rsplit("last failure: ", 1)[-1]
    for prefix in (f"{endpoint}: ", f"{endpoint} is ", f"{endpoint} "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


@dataclass
class Probe:
    """One member asked directly: its status, or why it did not answer."""

    endpoint: str
    member: MemberInfo | None
    info: NodeInfo | None = None
    error: str = ""
    took: float = 0.0
    foreign: bool = False  # it serves another cluster than the one the client talks to


async def _view(client: Client, timeout: float) -> NodeInfo | None:
    """The membership as the leader (else any member) sees it; None if nobody answers."""
    try:
        return await client.status(timeout=timeout)
    except ClusterMismatch as exc:
        # Endpoints of two clusters: say so, never show one cluster's view
        # with the other's members probed beside it.
        raise CliError(str(exc)) from None
    except NexusRaftError:
        return None


def _targets(view: NodeInfo | None, given: list[str]) -> list[tuple[str, MemberInfo | None]]:
    """(endpoint, member) for every member and every given endpoint, members first."""
    out: list[tuple[str, MemberInfo | None]] = []
    seen: set[str] = set()
    for m in view.members if view is not None else ():
        if m.address:
            target = normalize_endpoint(m.address)[0]
            if target not in seen:
                seen.add(target)
                out.append((target, m))
    for endpoint in given:
        target = normalize_endpoint(endpoint)[0]
        if target not in seen:
            seen.add(target)
            out.append((target, None))
    return out


async def _probe_all(
    client: Client, targets: list[tuple[str, MemberInfo | None]], timeout: float
) -> list[Probe]:
    async def one(endpoint: str, member: MemberInfo | None) -> Probe:
        start = time.monotonic()
        try:
            info = await client.status(endpoint=endpoint, timeout=timeout, fail_fast=True)
        except NexusRaftError as exc:
            return Probe(
                endpoint, member, error=_reason(exc, endpoint), took=time.monotonic() - start,
                foreign=isinstance(exc, ClusterMismatch),
            )  # fmt: skip
        return Probe(endpoint, member, info, took=time.monotonic() - start)

    return list(await asyncio.gather(*(one(e, m) for e, m in targets)))


def _gather(ctx: typer.Context) -> tuple[NodeInfo | None, list[Probe], str]:
    """The cluster's view, every member probed, and why the endpoints are mixed ("": not)."""
    o = opts(ctx)
    timeout = min(o.timeout, _PROBE_SECONDS)

    async def go() -> tuple[NodeInfo | None, list[Probe], str]:
        async with new_client(o, attempt_timeout=timeout) as client:
            view = await _view(client, o.timeout)
            probes = await _probe_all(client, _targets(view, o.endpoints), timeout)
            return view, probes, _mixed_clusters(client.cluster_id, probes)

    return run(go())


def _mixed_clusters(client_cluster: str | None, probes: list[Probe]) -> str:
    """A sentence when some endpoints serve another cluster than the client's, else ""."""
    foreign = [p.endpoint for p in probes if p.foreign]
    if not foreign:
        return ""
    return (
        f"{', '.join(foreign)} serve another cluster than "
        f"{client_cluster or 'the other endpoints'}: the endpoints name members of two "
        "clusters (remove the other cluster's members, or give --cluster-id)"
    )


def _leader_view(view: NodeInfo | None, probes: list[Probe]) -> NodeInfo | None:
    """The leader's own status if it answered (it alone knows match and lag)."""
    for p in probes:
        if p.info is not None and p.info.is_leader:
            return p.info
    return view if view is not None and view.is_leader else None


# --- endpoint status ----------------------------------------------------------------------


def _status_row(p: Probe, leader: NodeInfo | None) -> dict[str, Any]:
    seen = None
    if leader is not None:
        seen = next(
            (m for m in leader.members if normalize_endpoint(m.address)[0] == p.endpoint), None
        )
    info = p.info
    row: dict[str, Any] = {
        "endpoint": p.endpoint,
        "id": info.id if info else (p.member.id if p.member else None),
        "state": "up" if info else ("other cluster" if p.foreign else "down"),
        "version": info.version if info else None,
        "is_leader": info.is_leader if info else False,
        "kind": info.kind if info else (p.member.kind if p.member else None),
        "term": info.term if info else None,
        "commit": info.commit if info else None,
        "applied": info.applied if info else None,
        "leader_id": info.leader_id if info else None,
        "last_contact": None,
        "lag": seen.lag if seen is not None and leader is not None else None,
        "db_size": info.db_size if info else None,
        "errors": list(info.errors) if info else [p.error],
    }
    if info is not None:
        me = next((m for m in info.members if m.id == info.leader_id), None)
        row["last_contact"] = 0.0 if info.is_leader else (me.last_contact if me else None)
    return row


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


@endpoint_app.command("status")
def endpoint_status(ctx: typer.Context) -> None:
    """Each member's own view: id, version, leader?, kind, term, indexes, contact, lag, size."""
    view, probes, mixed = _gather(ctx)
    leader = _leader_view(view, probes)
    rows = [_status_row(p, leader) for p in probes]
    header = (
        "ENDPOINT",
        "ID",
        "STATE",
        "VERSION",
        "LEADER",
        "KIND",
        "TERM",
        "COMMIT",
        "APPLIED",
        "LAST CONTACT",
        "LAG",
        "DB SIZE",
        "ERRORS",
    )
    human = table(
        header,
        [
            (
                r["endpoint"],
                _cell(r["id"]),
                r["state"],
                _cell(r["version"]),
                "yes" if r["is_leader"] else "no",
                _cell(r["kind"]),
                _cell(r["term"]),
                _cell(r["commit"]),
                _cell(r["applied"]),
                duration(r["last_contact"]),
                _cell(r["lag"]),
                size(r["db_size"]) if r["db_size"] is not None else "-",
                "; ".join(r["errors"]) or "-",
            )
            for r in rows
        ],
    )
    emit(ctx, human, rows)
    if mixed:
        raise CliError(mixed)
    if not any(r["state"] == "up" for r in rows):
        raise CliError("no member answered")


# --- endpoint health -----------------------------------------------------------------------


@endpoint_app.command("health")
def endpoint_health(ctx: typer.Context) -> None:
    """A linearizable read through each member, with the time it took (exit 1 if any fails)."""
    o = opts(ctx)
    timeout = min(o.timeout, _PROBE_SECONDS)

    async def go() -> list[dict[str, Any]]:
        async with new_client(o, attempt_timeout=timeout) as client:
            view = await _view(client, o.timeout)
            targets = _targets(view, o.endpoints)

            async def one(endpoint: str, member: MemberInfo | None) -> dict[str, Any]:
                start = time.monotonic()
                error = ""
                try:
                    if member is not None and member.kind == "witness":
                        # A witness serves no reads: healthy when it knows a leader.
                        info = await client.status(
                            endpoint=endpoint, timeout=timeout, fail_fast=True
                        )
                        if info.leader_id is None:
                            error = "no leader"
                    else:
                        await client.get_with_revision(
                            "health", endpoint=endpoint, timeout=timeout, fail_fast=True
                        )
                except NexusRaftError as exc:
                    error = _reason(exc, endpoint)
                took = time.monotonic() - start
                return {
                    "endpoint": endpoint,
                    "id": member.id if member else None,
                    "health": not error,
                    "took_seconds": round(took, 6),
                    "error": error,
                }

            return list(await asyncio.gather(*(one(e, m) for e, m in targets)))

    rows = run(go())
    human = table(
        ("ENDPOINT", "ID", "HEALTH", "TOOK", "ERROR"),
        [
            (
                r["endpoint"],
                _cell(r["id"]),
                "true" if r["health"] else "false",
                duration(r["took_seconds"]),
                r["error"] or "-",
            )
            for r in rows
        ],
    )
    emit(ctx, human, rows)
    bad = [r["endpoint"] for r in rows if not r["health"]]
    if bad:
        raise CliError(f"unhealthy: {', '.join(bad)}")


# --- members and status ----------------------------------------------------------------------


def _member_rows(view: NodeInfo | None, probes: list[Probe]) -> list[dict[str, Any]]:
    """Members with health: the leader's view when it answered, else direct probes."""
    leader = _leader_view(view, probes)
    base = leader or view
    by_endpoint = {p.endpoint: p for p in probes}
    rows = []
    for m in base.members if base is not None else ():
        probe = by_endpoint.get(normalize_endpoint(m.address)[0]) if m.address else None
        health = m.health if leader is not None else "unknown"
        if health == "unknown" and probe is not None:
            health = "up" if probe.info is not None else "down"
        row = m.to_dict()
        row["health"] = health
        if leader is None:
            row["lag"] = None
        rows.append(row)
    return rows


def _members_table(rows: list[dict[str, Any]]) -> str:
    return table(
        (
            "ID",
            "ADDRESS",
            "KIND",
            "ROLE",
            "HEALTH",
            "LAST CONTACT",
            "MATCH",
            "LAG",
            "PAYLOAD_FLOOR",
        ),
        [
            (
                r["id"],
                r["address"],
                r["kind"],
                r["role"] or "-",
                r["health"],
                duration(r["last_contact"]),
                r["match"],
                _cell(r["lag"]),
                r["payload_floor"],
            )
            for r in rows
        ],
    )


def members(ctx: typer.Context) -> None:
    """List the members with kind, role, health, last contact and lag (the leader's view)."""
    view, probes, mixed = _gather(ctx)
    if mixed:
        raise CliError(mixed)
    if view is None and not any(p.info for p in probes):
        raise CliError(
            "no member answered: " + "; ".join(f"{p.endpoint}: {p.error}" for p in probes)
        )
    rows = _member_rows(view, probes)
    emit(ctx, _members_table(rows), rows)


def _quorum(rows: list[dict[str, Any]], leader: NodeInfo | None) -> tuple[bool, str]:
    voters = [r for r in rows if r["kind"] in ("voter", "witness")]
    up = [r for r in voters if r["health"] == "up"]
    counted = f"{len(up)} of {len(voters)} voters up"
    if leader is None:
        return False, f"NO QUORUM: no member knows a leader ({counted})"
    if len(up) * 2 <= len(voters):
        return False, f"NO QUORUM: {counted}"
    return True, f"ok ({counted})"


def status(
    ctx: typer.Context,
    endpoint: Annotated[
        str | None, typer.Option(help="Ask this member instead of the leader.")
    ] = None,
) -> None:
    """The leader's (or one member's) view: role, term, indexes, members, quorum."""
    o = opts(ctx)
    if endpoint is not None:

        async def one() -> NodeInfo:
            async with new_client(o) as client:
                return await client.status(endpoint=endpoint)

        info: NodeInfo | None = run(one())
        probes: list[Probe] = []
    else:
        info, probes, mixed = _gather(ctx)
        if mixed:
            raise CliError(mixed)
        if info is None:
            answered = [p.info for p in probes if p.info is not None]
            if not answered:
                raise CliError(
                    "no member answered: " + "; ".join(f"{p.endpoint}: {p.error}" for p in probes)
                )
            info = answered[0]
    assert info is not None
    leader = _leader_view(info, probes) if probes else (info if info.is_leader else None)
    rows = _member_rows(info, probes) if probes else [m.to_dict() for m in info.members]
    ok, quorum = _quorum(rows, leader) if probes else (info.leader_id is not None, "-")
    who = f"{info.leader_id} ({info.leader_address})" if info.leader_id else "none"
    lines = [
        f"member     {info.id} at {info.endpoint} ({info.role}, version {info.version or '?'}"
        + (f", {info.event_loop} loop)" if info.event_loop else ")"),
        f"cluster    {info.cluster_id}",
        f"leader     {who}",
    ]
    if probes:
        lines.append(f"quorum     {quorum}")
    lines += [
        f"term       {info.term}",
        f"commit     {info.commit}  applied {info.applied}  last {info.last_index}",
        f"revision   {info.revision}",
    ]
    if info.errors:
        lines.append(f"errors     {'; '.join(info.errors)}")
    lines += ["", _members_table([{**r, "health": r.get("health", "unknown")} for r in rows])]
    data = info.to_dict()
    data["members"] = rows
    data["quorum"] = ok
    emit(ctx, "\n".join(lines), data)
