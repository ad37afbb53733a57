"""The administrative half of RaftNode's public API (a mixin of ``RaftNode``).

Membership changes, leadership transfer and snapshots. Each takes
``forward``: on a node that does not lead, the call then runs on the leader
(:mod:`~nexus_raft.consensus.node.forward`) instead of raising NotLeader.
"""

from __future__ import annotations

import asyncio

from nexus_raft.consensus.core.membership import validate_conf_change
from nexus_raft.consensus.core.messages import ConfChange, ConfChangeType, Rejected, Role
from nexus_raft.consensus.node.apply import Applier
from nexus_raft.consensus.node.propose import ProposeAPI
from nexus_raft.errors import ConfigError, InvalidArgument, Timeout
from nexus_raft.transport.address import NodeAddress, parse_endpoint

__all__ = ["ROLES", "AdminAPI"]

ROLES = {
    "voter": ConfChangeType.ADD_VOTER,
    "learner": ConfChangeType.ADD_LEARNER,
    "witness": ConfChangeType.ADD_WITNESS,
}
"""Member roles ``add_member`` accepts, and the change each one proposes."""


class AdminAPI(ProposeAPI):
    """``add_member``, ``remove_member``, ``transfer_leadership``, ``snapshot`` of a RaftNode."""

    _applier: Applier | None
    _last_compact: int

    @property
    def is_leader(self) -> bool:  # pragma: no cover - RaftNode overrides it
        """Whether this node is the leader right now."""
        raise NotImplementedError

    async def add_member(
        self,
        node_id: int,
        endpoint: str,
        role: str = "voter",
        *,
        timeout: float = 5.0,
        forward: bool = False,
    ) -> None:
        """Add a member (``role`` voter, learner or witness); ``voter`` also promotes a learner.

        On a follower: NotLeader, or with ``forward`` the leader does it.
        """
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise TypeError(f"node_id must be an int, not {type(node_id).__name__}")
        if not isinstance(endpoint, str):
            raise TypeError(f"endpoint must be a str, not {type(endpoint).__name__}")
        if not isinstance(role, str):
            raise TypeError(f"role must be a str, not {type(role).__name__}")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {sorted(ROLES)}, got {role!r}")
        NodeAddress(node_id, endpoint)  # ValueError for a bad endpoint, before proposing
        cc = ConfChange(ROLES[role], node_id, endpoint.encode("utf-8"))
        if forward and self._should_forward():
            await self._forwarding().conf_change(
                node_id, endpoint, role, remove=False, timeout=timeout
            )
            return
        await self._conf_change(cc, timeout)

    async def remove_member(
        self, node_id: int, *, timeout: float = 5.0, forward: bool = False
    ) -> None:
        """Remove a member (voter, learner or witness); ``forward`` as for :meth:`add_member`."""
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise TypeError(f"node_id must be an int, not {type(node_id).__name__}")
        if forward and self._should_forward():
            await self._forwarding().conf_change(node_id, "", "", remove=True, timeout=timeout)
            return
        await self._conf_change(ConfChange(ConfChangeType.REMOVE, node_id), timeout)

    def _should_forward(self) -> bool:
        """Whether a request for the leader must go elsewhere (this node does not lead)."""
        return self._running().role is not Role.LEADER or self.config.is_witness

    async def _conf_change(self, cc: ConfChange, timeout: float) -> None:
        if not self.is_leader:
            raise self._not_leader()
        # The core only says "invalid"; say why, and as a deterministic error
        # (a retry cannot succeed) rather than a retryable one.
        conf_state = self._running().raft.status().conf_state
        why = validate_conf_change(conf_state, cc) or self._address_taken(conf_state.members, cc)
        if why is not None:
            raise InvalidArgument(f"invalid configuration change: {why}")
        await self._propose_op(lambda r: r.propose_conf_change(cc), timeout, "configuration change")

    def _address_taken(self, members: frozenset[int], cc: ConfChange) -> str | None:
        """Why ``cc`` adds a member at an address another member has (None: it does not).

        Two members at one address would each get the other's traffic; the
        usual cause is a typo, or a new id for a machine whose old member
        was never removed (remove it first).
        """
        if cc.type is ConfChangeType.REMOVE or not cc.context:
            return None
        try:
            host, port, _ = parse_endpoint(cc.context.decode("utf-8"))
        except ValueError:
            return None
        peers = self._running().peers
        for member in sorted(members - {cc.node_id}):
            address = peers.address(member)
            try:
                other_host, other_port, _ = parse_endpoint(address or "")
            except ValueError:
                continue
            if (other_host.lower(), other_port) == (host.lower(), port):
                return f"{address} is the address of member {member} (remove it first)"
        return None

    async def transfer_leadership(
        self, node_id: int, *, timeout: float = 5.0, forward: bool = False
    ) -> None:
        """Hand leadership to ``node_id`` and wait until it leads (``forward``: via the leader)."""
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise TypeError(f"node_id must be an int, not {type(node_id).__name__}")
        d = self._running()
        if d.leader_id == node_id:
            return
        if d.role is not Role.LEADER:
            if forward:
                await self._forwarding().transfer(node_id, timeout)
                return
            raise self._not_leader()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def op() -> None:
            out = d.raft.transfer_leadership(node_id)
            if isinstance(out, Rejected):
                fut.set_exception(self._rejection(out))
            else:
                fut.set_result(None)

        d.submit(op)
        await self._wait(fut, timeout, "leadership transfer")
        if not await d.wait_leader(lambda lid: lid == node_id, timeout):
            raise Timeout(f"node {node_id} did not take over within {timeout}s")

    async def snapshot(self, *, forward: bool = False, timeout: float = 60.0) -> int:
        """Snapshot now: compact the log up to the applied index; returns that index.

        ``forward``: snapshot the leader instead (this node if it leads).
        """
        if forward and self._should_forward():
            return await self._forwarding().snapshot(timeout)
        d = self._running()
        assert self._applier is not None
        applier = self._applier
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def op() -> None:
            try:
                fut.set_result(await d.compact(applier.applied))
            except Exception as exc:
                fut.set_exception(exc)

        d.submit(op)
        index = await self._wait(fut, timeout, "snapshot")
        self._last_compact = max(self._last_compact, index)
        return index
