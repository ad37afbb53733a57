"""Follower forwarding: a follower hands client requests to the leader and relays the answer.

A client that can reach any member can then write, even when it cannot
reach the leader itself (a partition between clients and the leader's
machine, or a client that was given only some of the members). Both halves
live here:

* :class:`Forwarder` (on a follower): waits briefly for a leader when none
  is known (an election is under way), sends the request over the peer
  connection this node already has to the leader (``RaftPeer.Forward``), and
  turns the answer back into results or exceptions;
* :func:`serve_forward` (on the leader): runs the request through the
  node's own API, exactly as if a client had sent it there, and never
  forwards again (a node that lost its leadership answers NOT_LEADER).

Payloads are opaque: the application's encoded commands. Exactly-once is the
application's business and survives forwarding unchanged: a retry re-sends
the same command bytes (the KV service's commands carry their client
session), so a command that was applied but whose answer was lost on the way
back is answered from the session table the second time.

Invariant: a forwarded command is proposed at most once per forward call;
the follower never re-sends it by itself (it cannot know whether a failed
call reached the leader), it reports the failure and lets the client retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from nexus_raft.consensus.core.messages import NONE
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.wire import pb
from nexus_raft.errors import (
    ConfigError,
    ConsensusError,
    InvalidArgument,
    NexusRaftError,
    NotLeader,
    ProposalDropped,
    Timeout,
    TooLarge,
    TransportError,
    Unavailable,
)
from nexus_raft.transport.errors import DeadlineExceeded

__all__ = ["ForwardTarget", "Forwarder", "error_to_pb", "serve_forward"]

_log = logging.getLogger(__name__)

# One Forward message stays well under the transport's 16 MiB message limit;
# bigger groups of commands are split and forwarded concurrently.
_MAX_FORWARD_BYTES = 8 << 20
# Keep this much of the caller's time for the answer's way back.
_MARGIN = 0.05


class ForwardTarget(Protocol):
    """What both halves need of the local node (``RaftNode`` implements it)."""

    @property
    def id(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_id(self) -> int | None: ...

    async def propose_many(
        self, commands: Sequence[bytes], *, timeout: float = 5.0
    ) -> list[bytes | NexusRaftError]: ...

    async def add_member(
        self, node_id: int, endpoint: str, role: str = "voter", *, timeout: float = 5.0
    ) -> None: ...

    async def remove_member(self, node_id: int, *, timeout: float = 5.0) -> None: ...

    async def transfer_leadership(self, node_id: int, *, timeout: float = 5.0) -> None: ...

    async def snapshot(self) -> int: ...

    def membership_of(self, node_id: int) -> tuple[bool, int]: ...


# --- errors on the wire -------------------------------------------------------------


def error_to_pb(exc: BaseException) -> pb.ForwardError:
    """The wire form of an exception raised while serving a forwarded request."""
    if isinstance(exc, NotLeader):
        return pb.ForwardError(
            code=pb.FORWARD_NOT_LEADER, message=str(exc), leader_id=exc.leader_id or 0
        )
    if isinstance(exc, TooLarge):
        return pb.ForwardError(code=pb.FORWARD_TOO_LARGE, message=str(exc))
    if isinstance(exc, (ConfigError, InvalidArgument, TypeError, ValueError)):
        return pb.ForwardError(code=pb.FORWARD_INVALID, message=str(exc))
    if isinstance(exc, (Timeout, asyncio.TimeoutError, TimeoutError)):
        return pb.ForwardError(code=pb.FORWARD_TIMEOUT, message=str(exc) or "timed out")
    if isinstance(exc, ProposalDropped):
        return pb.ForwardError(code=pb.FORWARD_DROPPED, message=str(exc))
    if isinstance(exc, Unavailable):
        return pb.ForwardError(code=pb.FORWARD_UNAVAILABLE, message=str(exc))
    return pb.ForwardError(code=pb.FORWARD_FAILED, message=f"{type(exc).__name__}: {exc}")


def _exception(err: pb.ForwardError, leader: int, address: str | None) -> NexusRaftError:
    """The exception a forwarded failure raises on the follower."""
    code = err.code
    text = f"leader {leader}: {err.message}" if err.message else f"leader {leader} refused"
    if code == pb.FORWARD_NOT_LEADER:
        return NotLeader(text, leader_id=err.leader_id or None, leader_address=address)
    if code == pb.FORWARD_TOO_LARGE:
        return TooLarge(text)
    if code == pb.FORWARD_INVALID:
        return InvalidArgument(text)
    if code == pb.FORWARD_TIMEOUT:
        return Timeout(text)
    if code == pb.FORWARD_DROPPED:
        return ProposalDropped(text)
    if code == pb.FORWARD_UNAVAILABLE:
        return Unavailable(text)
    return ConsensusError(text)


# --- the leader's side ------------------------------------------------------------------


async def serve_forward(node: ForwardTarget, request: pb.ForwardRequest) -> pb.ForwardResponse:
    """Run a forwarded request on this node (which should lead) and build the answer."""
    timeout = request.timeout_ms / 1000.0 if request.timeout_ms else 5.0
    resp = pb.ForwardResponse(from_id=node.id)
    op = request.WhichOneof("op")
    if op == "check":
        # "Am I still a member?": answered by any member, to anyone.
        resp.member, resp.removed_at = node.membership_of(request.from_id)
        resp.leader = node.is_leader
        return resp
    try:
        if not node.is_leader:
            raise NotLeader(
                f"node {node.id} is not the leader", leader_id=node.leader_id or None
            )
        if op == "propose":
            outcomes = await node.propose_many(list(request.propose.commands), timeout=timeout)
            for outcome in outcomes:
                result = resp.results.add()
                if isinstance(outcome, bytes):
                    result.result = outcome
                else:
                    result.error.CopyFrom(error_to_pb(outcome))
        elif op == "conf_change":
            cc = request.conf_change
            if cc.remove:
                await node.remove_member(cc.node_id, timeout=timeout)
            else:
                await node.add_member(cc.node_id, cc.address, cc.role or "voter", timeout=timeout)
        elif op == "transfer":
            await node.transfer_leadership(request.transfer.target, timeout=timeout)
        elif op == "snapshot":
            resp.index = await asyncio.wait_for(node.snapshot(), timeout)
        else:
            raise InvalidArgument("forwarded request names no operation")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if not isinstance(exc, NexusRaftError):
            _log.exception("node %d: forwarded %s failed", node.id, op)
        del resp.results[:]
        resp.error.CopyFrom(error_to_pb(exc))
    return resp


# --- the follower's side -----------------------------------------------------------------


class Forwarder:
    """Sends this node's client requests to the leader (see the module docstring).

    ``election_wait`` bounds how long a request waits for a leader when none
    is known; past it the caller gets ``NotLeader`` (no leader known) and may
    retry elsewhere.
    """

    def __init__(self, node_id: int, driver: Driver, peers: Peers, election_wait: float) -> None:
        self._id = node_id
        self._driver = driver
        self._peers = peers
        self._election_wait = election_wait

    async def _leader(self, deadline: float) -> int:
        """The leader's id, waiting (within ``deadline``) while an election runs."""
        d = self._driver
        if d.leader_id == NONE:
            loop = asyncio.get_running_loop()
            wait = min(self._election_wait, max(0.0, deadline - loop.time()) / 2)
            await d.wait_leader(lambda lid: lid != NONE, wait)
        lid = d.leader_id
        if lid == NONE:
            raise NotLeader(f"node {self._id} is not the leader; no leader known")
        return lid

    async def _call(
        self, request: pb.ForwardRequest, timeout: float
    ) -> tuple[pb.ForwardResponse, int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        leader = await self._leader(deadline)
        if leader == self._id:
            raise Unavailable(f"node {self._id} just became the leader; retry")
        remaining = deadline - loop.time() - _MARGIN
        if remaining <= 0:
            raise Timeout("no time left to forward the request to the leader")
        request.timeout_ms = max(1, int(remaining * 1000))
        address = self._peers.address(leader)
        try:
            client = await self._peers.client(leader)
            resp = await client.forward(request, timeout=remaining + _MARGIN)
        except KeyError:
            raise Unavailable(f"the leader {leader}'s address is unknown") from None
        except DeadlineExceeded as exc:
            raise Timeout(f"forwarding to the leader {leader} at {address}: {exc}") from None
        except TransportError as exc:
            # Not sent, or sent and the answer lost: either way the caller may
            # retry with the same command (sessions make it exactly-once).
            raise Unavailable(f"forwarding to the leader {leader} at {address}: {exc}") from None
        if resp.HasField("error") and resp.error.code != pb.FORWARD_OK:
            named = resp.error.leader_id
            raise _exception(resp.error, leader, self._peers.client_address(named))
        return resp, leader

    async def propose_many(
        self, commands: Sequence[bytes], timeout: float
    ) -> list[bytes | NexusRaftError]:
        """Propose ``commands`` through the leader; one outcome per command, in order."""
        groups: list[list[bytes]] = [[]]
        size = 0
        for command in commands:
            if groups[-1] and size + len(command) > _MAX_FORWARD_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(command)
            size += len(command)

        async def one(group: list[bytes]) -> list[bytes | NexusRaftError]:
            request = pb.ForwardRequest(from_id=self._id, propose=pb.ForwardPropose(commands=group))
            resp, leader = await self._call(request, timeout)
            if len(resp.results) != len(group):
                raise ConsensusError(
                    f"leader {leader} answered {len(resp.results)} results for {len(group)}"
                )
            address = self._peers.client_address(leader)
            return [
                r.result if not r.HasField("error") or r.error.code == pb.FORWARD_OK
                else _exception(r.error, leader, address)
                for r in resp.results
            ]

        if len(groups) == 1:
            return await one(groups[0])
        parts = await asyncio.gather(*(one(g) for g in groups))
        return [outcome for part in parts for outcome in part]

    async def conf_change(
        self, node_id: int, address: str, role: str, *, remove: bool, timeout: float
    ) -> None:
        """Add (``role``), promote or remove a member through the leader."""
        change = pb.ForwardConfChange(node_id=node_id, address=address, role=role, remove=remove)
        await self._call(pb.ForwardRequest(from_id=self._id, conf_change=change), timeout)

    async def transfer(self, target: int, timeout: float) -> None:
        """Ask the leader to hand leadership to ``target`` (answers once it leads)."""
        request = pb.ForwardRequest(from_id=self._id, transfer=pb.ForwardTransfer(target=target))
        await self._call(request, timeout)

    async def snapshot(self, timeout: float) -> int:
        """Make the leader snapshot now; returns its snapshot index."""
        request = pb.ForwardRequest(from_id=self._id, snapshot=pb.ForwardSnapshot())
        resp, _ = await self._call(request, timeout)
        return int(resp.index)
