"""Running a member program to its end: joining, signals, self-halts and exit statuses.

Shared by ``nexus-node`` and ``nexus-witness``. A member runs until SIGTERM
or SIGINT, or until it stops itself: removed from its cluster (exit 3,
``EXIT_REMOVED``), or started with a data directory or an initial
configuration that contradicts its cluster's (exit 2, as for a bad
argument). Either way one line on stderr says why.

``--join HOST:PORT[,...]`` (see :mod:`nexus_raft.kv.join`): a fresh member
learns the cluster id and the members from any member before it starts
(:func:`joining_config`), and once it runs it has itself added and, as a
voter, promoted when it caught up (:func:`finish_join`). A restart from a
data directory that recorded its identity needs nothing from the cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nexus_raft.cli.common import EXIT_REMOVED, EXIT_USAGE, fail
from nexus_raft.errors import IdentityMismatch, MemberRemoved, NexusRaftError

if TYPE_CHECKING:
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.consensus.node.datadir import Identity

__all__ = ["Joining", "finish_join", "joining_config", "run_member", "until_stopped"]

_log = logging.getLogger("nexus_raft.cli.member")


def run_member(run: Callable[[], object]) -> None:
    """``run()`` the program; a removal or an identity conflict ends with its exit status."""
    try:
        run()
    except IdentityMismatch as exc:
        fail(str(exc), EXIT_USAGE)
    except MemberRemoved as exc:
        fail(str(exc), EXIT_REMOVED)


async def until_stopped(
    node: Any, stop: asyncio.Event, also: asyncio.Future[Any] | None = None
) -> Any:
    """Wait for ``stop`` (a signal), or for ``node`` to halt itself (removed, misconfigured)
    or to fail (it cannot write its data); returns its ``Halt`` or None.

    ``also`` (the join's task) is watched too: its exception ends the wait
    and is raised; its normal end is not a reason to stop.
    """
    halted = asyncio.ensure_future(node.wait_halted())
    stopped = asyncio.ensure_future(stop.wait())
    waiting: set[asyncio.Future[Any]] = {halted, stopped}
    failed: asyncio.Future[Any] | None = None
    if hasattr(node, "wait_failed"):  # it cannot write its data: see RaftNode.failure
        failed = asyncio.ensure_future(node.wait_failed())
        waiting.add(failed)
    try:
        while True:
            if also is not None and not also.done():
                waiting.add(also)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if also is not None and also in done:
                waiting.discard(also)
                if not also.cancelled() and also.exception() is not None:
                    raise also.exception()  # type: ignore[misc]
                if not (done - {also}):
                    continue
            break
    finally:
        for task in (halted, stopped, failed):
            if task is not None:
                task.cancel()
    return node.halted


@dataclass
class Joining:
    """``--join`` of a member program: where to ask, as what, and when to promote."""

    seeds: list[str]
    role: str = "voter"
    max_lag: int = 100
    tls: Any = None
    timeout: float = 30.0


def recorded_identity(config: NodeConfig) -> Identity | None:
    """The identity ``config``'s data directory recorded (None: a fresh directory)."""
    from nexus_raft.consensus.node.datadir import peek_identity

    return peek_identity(config.store_path)


async def joining_config(config: NodeConfig, join: Joining) -> NodeConfig:
    """``config`` for a fresh member joining a running cluster: its id and address book.

    A data directory that already recorded an identity is a restart: it
    needs nothing from the cluster (which may be down as a whole), so
    ``config`` is returned as is.
    """
    from nexus_raft.kv.join import discover

    if recorded_identity(config) is not None:
        return config
    view = await discover(join.seeds, tls=join.tls, timeout=join.timeout,
                          cluster_id=config.cluster_id)  # fmt: skip
    own = config.peer_listen or config.listen
    if view.addresses.get(config.id, own) != own:
        raise IdentityMismatch(
            f"member {config.id} of cluster {view.cluster_id} is at {view.addresses[config.id]}, "
            f"not {own}: pick another --id, or remove member {config.id} first"
        )
    holder = next((i for i, a in sorted(view.addresses.items()) if a == own and i != config.id),
                  None)  # fmt: skip
    if holder is not None:
        raise IdentityMismatch(
            f"{own} is the address of member {holder} of cluster {view.cluster_id}: give this "
            f"member another address, or remove member {holder} first"
        )
    witnesses = view.witnesses | ({config.id} if join.role == "witness" else frozenset())
    _log.info(
        "joining cluster %s (members %s) as member %d at %s",
        view.cluster_id, ", ".join(map(str, sorted(view.addresses))), config.id, own,
    )  # fmt: skip
    return dataclasses.replace(
        config,
        peers={**view.addresses, config.id: own},
        cluster_id=view.cluster_id,
        witnesses=witnesses,
        join=True,
    )


async def finish_join(config: NodeConfig, join: Joining, node: Any, stop: asyncio.Event) -> None:
    """Once the node runs: be added (if not yet), then promoted (``voter``). Retries until done.

    Raises ``IdentityMismatch`` when the cluster holds this id at another address.
    """
    from nexus_raft.kv.client.client import Client
    from nexus_raft.kv.join import ensure_member, promote_when_caught_up

    own = config.peer_listen or config.listen
    endpoints = list(join.seeds)
    async with Client(endpoints, timeout=join.timeout, tls=join.tls,
                      cluster_id=node.cluster_id) as client:  # fmt: skip
        while not stop.is_set():
            try:
                kind = await ensure_member(client, config.id, own, join.role, timeout=join.timeout)
                break
            except IdentityMismatch:
                raise
            except NexusRaftError as exc:
                _log.warning("member %d: joining will be retried: %s", config.id, exc)
                await _pause(stop, 1.0)
        else:
            return
        if join.role == "voter" and kind == "learner":
            await promote_when_caught_up(client, config.id, own, max_lag=join.max_lag,
                                         stopped=stop)  # fmt: skip


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
