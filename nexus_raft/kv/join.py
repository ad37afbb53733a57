"""Joining a running cluster by itself: ``nexus-node --join HOST:PORT[,HOST:PORT]``.

A new member needs nothing but the address of one member (any member: a
follower forwards the membership change to the leader):

1. :func:`discover`: ask the cluster (``Client.status()``, the confirmed
   leader's view) for its cluster id and its members with their addresses;
2. the caller starts its node with that cluster id and address book, as a
   member that waits for the leader (``NodeConfig(join=True)``);
3. :func:`ensure_member`: add it (as a learner, or as a witness) unless the
   configuration already holds it (a restart, or a retry after a crash);
   the leader then brings it up to date (log entries or a snapshot);
4. :func:`promote_when_caught_up` (``--join-as voter``): once the leader's
   view of its match index is within ``max_lag`` entries of the leader's
   last index, make it a voter. A learner that votes before it caught up
   would only slow commits down (a quorum may then need it).

Every step is idempotent, so running the same command again after a crash
at any point finishes the join.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nexus_raft.errors import IdentityMismatch, InvalidArgument, NexusRaftError
from nexus_raft.kv.client.client import Client

__all__ = [
    "JOIN_ROLES",
    "ClusterView",
    "discover",
    "ensure_member",
    "promote_when_caught_up",
]

_log = logging.getLogger(__name__)

JOIN_ROLES = ("voter", "learner", "witness")
"""What ``--join-as`` accepts."""


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a joining member learns from the cluster before it starts."""

    cluster_id: str
    addresses: dict[int, str]
    kinds: dict[int, str]

    @property
    def witnesses(self) -> frozenset[int]:
        """Members that are witnesses."""
        return frozenset(i for i, k in self.kinds.items() if k == "witness")


async def discover(
    seeds: Sequence[str], *, tls: Any = None, timeout: float = 30.0, cluster_id: str | None = None
) -> ClusterView:
    """The cluster's id and members, from any of ``seeds`` (``Unavailable``/``Timeout`` if none).

    ``cluster_id``: refuse a cluster with another id (``ClusterMismatch``).
    """
    async with Client(list(seeds), timeout=timeout, tls=tls, cluster_id=cluster_id) as client:
        info = await client.status()
    return ClusterView(
        info.cluster_id,
        {m.id: m.address for m in info.members},
        {m.id: m.kind for m in info.members},
    )


async def ensure_member(
    client: Client, node_id: int, address: str, role: str, *, timeout: float = 30.0
) -> str:
    """Make ``node_id`` (at ``address``) a member unless it is one; returns its kind then.

    ``role`` ``voter`` and ``learner`` add a learner (a voter is promoted
    later, :func:`promote_when_caught_up`), ``witness`` adds a witness.
    Raises ``IdentityMismatch`` when the id is a member at another address.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await client.status(timeout=max(1.0, deadline - loop.time()))
        me = next((m for m in info.members if m.id == node_id), None)
        if me is not None:
            if me.address != address:
                raise IdentityMismatch(
                    f"member {node_id} of cluster {info.cluster_id} is at {me.address}, not "
                    f"{address}: pick another --id, or remove member {node_id} first"
                )
            return me.kind
        add_as = "witness" if role == "witness" else "learner"
        try:
            await client.add_member(
                node_id, address, role=add_as, timeout=max(1.0, deadline - loop.time())
            )
            _log.info("member %d added to cluster %s as a %s", node_id, info.cluster_id, add_as)
            return add_as
        except InvalidArgument:
            # Another configuration change was under way, or a concurrent
            # attempt added it meanwhile: look again.
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)


async def promote_when_caught_up(
    client: Client,
    node_id: int,
    address: str,
    *,
    max_lag: int = 100,
    poll: float = 0.5,
    stopped: asyncio.Event | None = None,
) -> bool:
    """Promote learner ``node_id`` to voter once its match is within ``max_lag`` of the leader's.

    Polls the leader's view every ``poll`` seconds; failures (an election,
    a busy leader) are logged and retried. Returns True once it is a voter,
    False when ``stopped`` was set first.
    """
    reported = -1
    while stopped is None or not stopped.is_set():
        try:
            info = await client.status()
            me = next((m for m in info.members if m.id == node_id), None)
            if me is not None and me.kind == "voter":
                return True
            if me is not None and me.kind == "learner" and info.is_leader:
                lag = max(0, info.last_index - me.match)
                if lag <= max_lag:
                    await client.add_member(node_id, address, role="voter")
                    _log.info(
                        "member %d caught up (%d entries behind the leader): promoted to voter",
                        node_id, lag,
                    )  # fmt: skip
                    return True
                if reported < 0 or lag < reported // 2:
                    reported = lag
                    _log.info("member %d catching up: %d entries behind the leader",
                              node_id, lag)  # fmt: skip
        except NexusRaftError as exc:
            _log.warning("member %d: promotion to voter will be retried: %s", node_id, exc)
        if stopped is not None:
            try:
                await asyncio.wait_for(stopped.wait(), poll)
            except asyncio.TimeoutError:
                pass
        else:
            await asyncio.sleep(poll)
    return False
