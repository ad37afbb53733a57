"""The proposing and reading half of RaftNode's public API (a mixin of ``RaftNode``).

``propose``/``propose_many`` hand commands to the driver and wait for their
results; ``read_index`` gets a linearizable read point. Everything here goes
through the driver's inbox (the core is only touched on the driver task) and
waits with one timer per call instead of ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from nexus_raft.consensus.core.messages import NONE, Accepted, Rejected, RejectReason, Role
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.node.apply import ProposalGroup, Proposals
from nexus_raft.consensus.node.attributes import decode_publish, is_publish
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.forward import Forwarder
from nexus_raft.consensus.node.grouping import ProposalGrouper
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.state_machine import GroupsCommands, StateMachine
from nexus_raft.errors import (
    ConsensusError,
    InvalidArgument,
    NexusRaftError,
    NotLeader,
    Timeout,
    TooLarge,
    Unavailable,
    UnsafeRemoval,
)

__all__ = ["ProposeAPI"]

# A read's context: node id, a random number drawn at each start, a counter.
# The random part keeps a read issued after a restart from sharing the context
# of a read the previous incarnation left pending at the leader (a leader joins
# requests with the same context, and would answer the new read with the old
# read's index).
_CTX = struct.Struct(">QQQ")
T = TypeVar("T")


def _expire(fut: asyncio.Future[Any], what: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(Timeout(f"{what} did not complete within {timeout}s"))


class ProposeAPI:
    """``propose``, ``propose_many``, ``read_index``, ``wait_for_leader`` of a RaftNode.

    The node provides the attributes declared here and ``_running()``.
    """

    config: NodeConfig
    _proposals: Proposals
    _ctx: Iterator[int]
    _ctx_nonce: int
    _peers: Peers | None
    _forwarder: Forwarder | None
    _sm: StateMachine | None
    _grouper: ProposalGrouper | None = None

    @property
    def id(self) -> int:
        """This member's id."""
        return self.config.id

    @property
    def leader_id(self) -> int | None:  # pragma: no cover - RaftNode overrides it
        """The known leader's id, or None."""
        raise NotImplementedError

    def _running(self) -> Driver:  # pragma: no cover - RaftNode overrides it
        raise NotImplementedError

    @property
    def term(self) -> int:
        """This node's current Raft term: cheap, unlike ``status()`` (Unavailable when stopped)."""
        return int(self._running().raft.term)

    async def _wait(self, fut: asyncio.Future[T], timeout: float, what: str) -> T:
        # A timer that fails the future, not asyncio.wait_for: wait_for costs
        # an extra future, callbacks and a task switch per call, and this is
        # on the path of every proposal.
        handle = asyncio.get_running_loop().call_later(timeout, _expire, fut, what, timeout)
        try:
            return await fut
        finally:
            handle.cancel()

    def _not_leader(self, leader_id: int | None = None) -> NotLeader:
        lid = leader_id if leader_id else self.leader_id
        addr = self._peers.client_address(lid) if lid and self._peers is not None else None
        return NotLeader(
            f"node {self.id} is not the leader"
            + (f"; the leader is {lid} at {addr}" if lid else "; no leader known"),
            leader_id=lid or None,
            leader_address=addr,
        )

    def _forwarding(self) -> Forwarder:
        """The forwarder (``Unavailable`` before ``start()``)."""
        if self._forwarder is None:
            raise Unavailable("node is not running")
        return self._forwarder

    def _rejection(self, out: Rejected) -> NexusRaftError:
        if out.reason in (RejectReason.NOT_LEADER, RejectReason.WITNESS):
            return self._not_leader(out.leader_id)
        if out.reason is RejectReason.TRANSFERRING:
            return Unavailable("leadership transfer in progress; retry shortly")
        if out.reason is RejectReason.LEADER_NOT_READY:
            return Unavailable(
                f"node {self.id} was just elected and has not yet committed an entry of its"
                " term; configuration changes wait for that: retry shortly"
            )
        if out.reason is RejectReason.UNSAFE_REMOVAL:
            return UnsafeRemoval(
                f"refused: {out.detail}; a witness's payloads never count as the second copy:"
                " bring the lagging full member up to date, or add a full member first"
            )
        if out.reason is RejectReason.TOO_LARGE:
            return TooLarge(f"proposal larger than {self.config.max_proposal_bytes} bytes")
        if out.reason is RejectReason.CONF_CHANGE_PENDING:
            return Unavailable(f"{out.reason.value}; retry once it has committed")
        if out.reason is RejectReason.NOT_MEMBER and out.detail:
            return InvalidArgument(f"cannot transfer leadership: {out.detail}")
        if out.reason in (RejectReason.INVALID_CONF_CHANGE, RejectReason.NOT_MEMBER):
            return InvalidArgument(out.reason.value)
        return ConsensusError(out.reason.value)

    async def wait_for_leader(self, timeout: float = 5.0) -> int:
        """Wait until a leader is known; returns its id (Timeout when none in time)."""
        d = self._running()
        if not await d.wait_leader(lambda lid: lid != NONE, timeout):
            raise Timeout(f"no leader within {timeout}s")
        return d.leader_id

    async def _propose_op(self, make: Callable[[Raft], Any], timeout: float, what: str) -> bytes:
        d = self._running()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def op() -> None:
            out = make(d.raft)
            if isinstance(out, Accepted):
                self._proposals.add(out.index, out.term, fut)
            elif fut.done():
                return  # timed out or cancelled meanwhile
            elif isinstance(out, Rejected):
                self._proposals.failed += 1
                fut.set_exception(self._rejection(out))
            else:  # pragma: no cover - the core returns an Outcome
                fut.set_exception(ConsensusError(f"unexpected outcome {out!r}"))

        d.submit(op)
        try:
            return await self._wait(fut, timeout, what)
        except Timeout:
            self._proposals.failed += 1
            raise

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes:
        """Replicate ``command``; returns the state machine's result once applied.

        On the leader the result is the local state machine's. On a follower
        this raises NotLeader (with the leader's id and address), unless
        ``forward``: then the command goes to the leader over the peer
        connection (see :mod:`~nexus_raft.consensus.node.forward`) and the
        leader's result comes back. ProposalDropped if the entry was
        overwritten, Timeout at the deadline (outcome unknown).
        """
        if not isinstance(command, (bytes, bytearray, memoryview)):
            raise TypeError(f"command must be bytes, not {type(command).__name__}")
        d = self._running()
        data = bytes(command)
        if data[:1] == b"\x00":
            _check_reserved(data)
        if d.role is not Role.LEADER or self.config.is_witness:
            if not forward:
                raise self._not_leader()
            outcome = (await self._forwarding().propose_many([data], timeout))[0]
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        grouper = self._grouper_for(d)
        if grouper is None:
            return await self._propose_op(lambda r: r.propose(data), timeout, "proposal")
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        grouper.add(data, fut)
        try:
            return await self._wait(fut, timeout, "proposal")
        except Timeout:
            self._proposals.failed += 1
            raise

    def _grouper_for(self, d: Driver) -> ProposalGrouper | None:
        """The proposal grouper of driver ``d`` (None: the state machine cannot group)."""
        grouper = self._grouper
        if grouper is not None and grouper.driver is d:
            return grouper
        sm = self._sm
        if sm is None or not isinstance(sm, GroupsCommands):
            return None
        grouper = self._grouper = ProposalGrouper(
            d, sm, self._proposals, self._rejection, self.config.max_proposal_bytes
        )
        return grouper

    async def propose_many(
        self, commands: Sequence[bytes], *, timeout: float = 5.0, forward: bool = False
    ) -> list[bytes | NexusRaftError]:
        """Replicate several commands appended in one go; their results, in order.

        All are appended to the log in one driver step (so they share one
        Ready and one fsync) and awaited with one future and one timer, which
        is what makes a big client batch cheap. Each slot holds the state
        machine's result, or the error that ended that command
        (``ProposalDropped``, ``NotLeader`` if leadership moved mid-way, ...).
        Raises NotLeader on a follower (unless ``forward``: then the group
        goes to the leader, as for :meth:`propose`) and Timeout at the
        deadline (the outcome of every command is then unknown).
        """
        if isinstance(commands, (bytes, bytearray, memoryview, str)) or not isinstance(
            commands, Sequence
        ):
            raise TypeError(f"commands must be a sequence of bytes, not {type(commands).__name__}")
        datas: list[bytes] = []
        for n, command in enumerate(commands):
            if not isinstance(command, (bytes, bytearray, memoryview)):
                raise TypeError(f"commands[{n}] must be bytes, not {type(command).__name__}")
            data = command if type(command) is bytes else bytes(command)
            if data[:1] == b"\x00":
                _check_reserved(data)
            datas.append(data)
        d = self._running()
        if d.role is not Role.LEADER or self.config.is_witness:
            if not forward:
                raise self._not_leader()
            if not datas:
                return []
            return await self._forwarding().propose_many(datas, timeout)
        fut: asyncio.Future[list[bytes | NexusRaftError]] = (
            asyncio.get_running_loop().create_future()
        )
        group = ProposalGroup(len(datas), fut)
        if not datas:
            return []
        proposals = self._proposals

        def op() -> None:
            if fut.done():
                return  # timed out meanwhile: do not append what nobody awaits
            propose = d.raft.propose
            for slot, data in enumerate(datas):
                out = propose(data)
                if isinstance(out, Accepted):
                    proposals.add_to_group(out.index, out.term, group, slot)
                elif isinstance(out, Rejected):
                    proposals.failed += 1
                    group.settle(slot, self._rejection(out))
                else:  # pragma: no cover - the core returns an Outcome
                    group.settle(slot, ConsensusError(f"unexpected outcome {out!r}"))

        d.submit(op)
        try:
            return await self._wait(fut, timeout, f"batch of {len(datas)} proposals")
        except Timeout:
            proposals.failed += group.left
            raise

    def _read_context(self) -> bytes:
        """The context of this node's next read (unique across restarts)."""
        return _CTX.pack(self.id, self._ctx_nonce, next(self._ctx))

    async def read_index(self, *, timeout: float = 5.0) -> int:
        """A linearizable read point: returns once this node applied the leader's commit index.

        On a follower the request is forwarded to the leader through the core.
        """
        d = self._running()
        if self.config.is_witness:
            raise self._not_leader()
        ctx = self._read_context()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def op() -> None:
            d.reads[ctx] = fut
            out = d.raft.read_index(ctx)
            if isinstance(out, Rejected):
                d.reads.pop(ctx, None)
                if not fut.done():
                    fut.set_exception(self._rejection(out))

        d.submit(op)
        try:
            return await self._wait(fut, timeout, "read index")
        finally:
            d.reads.pop(ctx, None)


def _check_reserved(data: bytes) -> None:
    """Commands starting with the member attributes prefix must be attributes entries.

    The node applies such entries itself (they never reach the state
    machine), so an application command that happened to start with the
    prefix would be swallowed: it is refused instead (InvalidArgument).
    """
    if is_publish(data):
        decode_publish(data)
