"""Shared plumbing of the KV servicer: the node it serves, request checks, error answers.

:class:`ServiceBase` holds what every RPC handler needs: the node, the cluster
id check, the deadline budget and :meth:`ServiceBase._answer`, which turns any
exception into a response ``error`` so no handler lets one escape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from nexus_raft.errors import ClusterMismatch, NexusRaftError, NotLeader, Timeout
from nexus_raft.kv.limits import Limits
from nexus_raft.kv.service.watch import WatchPolicy
from nexus_raft.kv.wire import error_from_exception

__all__ = ["ServedNode", "ServiceBase"]

_log = logging.getLogger("nexus_raft.kv.service.kv")

_R = TypeVar("_R")

# Keep this much of the caller's gRPC deadline for sending the answer back.
_DEADLINE_MARGIN = 0.05


class ServedNode(Protocol):
    """What the service needs from a node (``RaftNode`` provides all of it)."""

    @property
    def state_machine(self) -> Any: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_id(self) -> int | None: ...

    @property
    def leader_address(self) -> str | None: ...

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes: ...

    async def propose_many(
        self, commands: Sequence[bytes], *, timeout: float = 5.0, forward: bool = False
    ) -> Sequence[bytes | BaseException]: ...

    async def read_index(self, *, timeout: float = 5.0) -> int: ...

    def status(self) -> Any: ...

    async def add_member(
        self, node_id: int, endpoint: str, role: str = "voter", *, forward: bool = False
    ) -> None: ...

    async def remove_member(self, node_id: int, *, forward: bool = False) -> None: ...

    async def transfer_leadership(self, node_id: int, *, forward: bool = False) -> None: ...

    async def snapshot(self, *, forward: bool = False) -> int: ...


class ServiceBase:
    """State and helpers shared by the KV data RPCs and the cluster RPCs.

    ``clock`` is the wall clock (seconds, like ``time.time``) whose reading
    each write carries in its command for session expiry; the whole-node
    simulator passes a clock it can jump. Default: ``time.time``.
    """

    def __init__(
        self,
        node: ServedNode,
        *,
        cluster_id: str | None = None,
        timeout: float = 5.0,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        forward: bool = True,
    ) -> None:
        if cluster_id is not None and not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be str or None, not {type(cluster_id).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if not isinstance(forward, bool):
            raise TypeError(f"forward must be a bool, not {type(forward).__name__}")
        self._node = node
        self._fixed_cluster_id = cluster_id
        self._timeout = float(timeout)
        self._limits = limits or Limits()
        self.watch_policy = WatchPolicy()
        """Limits on watches per client connection (see kv/service/watch.py)."""
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self._clock: Callable[[], float] = clock or time.time
        self._forward = forward

    @property
    def cluster_id(self) -> str:
        """The cluster id this service checks requests against ("" = none).

        Unless given explicitly it is read from the node on each request: a
        node knows its cluster id for sure only once it opened its data
        directory (the stored identity wins over the command line).
        """
        if self._fixed_cluster_id is not None:
            return self._fixed_cluster_id
        return _node_cluster_id(self._node)

    @property
    def _cluster_id(self) -> str:
        return self.cluster_id

    @property
    def forward(self) -> bool:
        """Whether a follower forwards writes and admin calls to the leader (else NOT_LEADER)."""
        return self._forward

    def _leader_hint(self, error: Any) -> None:
        """Name the leader in an OK answer's ``error`` when this member forwarded to it.

        The client then knows the answer came through a follower and may try
        the leader directly next time (when it can reach it).
        """
        if not self._node.is_leader:
            error.leader_id = self._node.leader_id or 0
            error.leader_address = self._node.leader_address or ""

    # --- helpers --------------------------------------------------------------------

    def _now_ms(self) -> int:
        # Wall clock on purpose: it only feeds session expiry, and it travels
        # in the log entry, so every replica sees the same value.
        return int(self._clock() * 1000)

    def _check_cluster(self, cluster_id: str) -> None:
        if cluster_id and self._cluster_id and cluster_id != self._cluster_id:
            raise ClusterMismatch(
                f"request is for cluster {cluster_id!r} but this node serves {self._cluster_id!r}"
            )

    def _budget(self, context: Any) -> float:
        """Seconds this request may spend waiting on Raft."""
        remaining = context.time_remaining() if context is not None else None
        if remaining is None:
            return self._timeout
        return max(0.01, min(self._timeout, float(remaining) - _DEADLINE_MARGIN))

    def _state_machine(self) -> Any:
        sm = self._node.state_machine
        if sm is None:
            # A witness: it holds no data, so point the client at the leader.
            raise NotLeader(
                "this member is a witness and holds no data",
                leader_id=self._node.leader_id,
                leader_address=self._node.leader_address,
            )
        return sm

    async def _answer(
        self,
        make: Callable[..., Any],
        work: Callable[[], Awaitable[_R]],
        build: Callable[[_R], Any],
    ) -> Any:
        """Run ``work``; on success ``build`` the response, on failure answer ``error``."""
        try:
            return build(await work())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failure(exc)
            return make(error=error_from_exception(exc))

    async def _with_budget(self, call: Awaitable[_R], context: Any) -> _R:
        try:
            return await asyncio.wait_for(call, self._budget(context))
        except asyncio.TimeoutError:
            raise Timeout("the request did not complete within its deadline") from None


def _node_cluster_id(node: object) -> str:
    """The node's cluster id, wherever this node type keeps it ("" if nowhere)."""
    value = getattr(node, "cluster_id", None)
    if value is None:
        config = getattr(node, "config", None)
        value = getattr(config, "effective_cluster_id", None)
    return value if isinstance(value, str) else ""


def log_failure(exc: BaseException) -> None:
    if isinstance(exc, NexusRaftError):
        _log.debug("request refused: %s: %s", type(exc).__name__, exc)
    else:
        _log.exception("unexpected error while serving a KV request")
