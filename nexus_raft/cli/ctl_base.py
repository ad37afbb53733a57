"""What every ``nexusctl`` command shares: the global options, a client, output.

The root callback (:mod:`nexus_raft.cli.ctl`) stores :class:`Options` on the
click context; a command reaches them with :func:`opts`, runs its work with a
connected :class:`~nexus_raft.kv.client.client.Client` through :func:`call`
and prints with :func:`emit` (human text, or one JSON document with
``--json``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import typer

from nexus_raft.cli.interrupt import run_interruptible
from nexus_raft.kv.client.client import Client

__all__ = ["Options", "call", "emit", "new_client", "opts", "run"]

_T = TypeVar("_T")


@dataclass
class Options:
    """``nexusctl``'s global options."""

    endpoints: list[str]
    json: bool
    timeout: float
    cluster_id: str | None
    client_options: dict[str, Any] = field(default_factory=dict)


def opts(ctx: typer.Context) -> Options:
    """The global options of this invocation."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def new_client(o: Options, **overrides: Any) -> Client:
    """A client for the configured endpoints (``overrides``: Client keyword arguments)."""
    kwargs: dict[str, Any] = {
        "timeout": o.timeout,
        "cluster_id": o.cluster_id,
        **o.client_options,
        **overrides,
    }
    return Client(o.endpoints, **kwargs)


def run(work: Awaitable[_T]) -> _T:
    """Run ``work`` to completion on a fresh event loop."""
    return asyncio.run(work)  # type: ignore[arg-type]


def call(ctx: typer.Context, work: Callable[[Client], Awaitable[_T]]) -> _T:
    """Run ``work`` with a connected client on a fresh event loop."""
    o = opts(ctx)

    async def go() -> _T:
        async with new_client(o) as client:
            return await work(client)

    return run_interruptible(go)


def emit(ctx: typer.Context, human: str, data: Any) -> None:
    """Print ``human`` (skipped when empty), or ``data`` as JSON with ``--json``."""
    if opts(ctx).json:
        typer.echo(json.dumps(data, sort_keys=True))
    elif human:
        typer.echo(human)
