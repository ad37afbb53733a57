"""Whether this node still belongs where it runs: removed members and misconfigured ones stop.

A node that should not serve says so in one line and halts, instead of
serving "no leader known" for ever:

* **Removed.** It applies its own removal (the entry committed), or, when
  the removal never reached it (the leader stops replicating to a member
  once its removal is appended), it notices it has heard from no leader for
  a while and asks its peers "am I still a member?" (``Forward`` with the
  ``check`` operation, answered even to a node outside the configuration).
  The answers count when the leader, or a majority of the voters this node
  knows, say it is not a member and they applied (saw committed) its
  removal. The data directory then records the removal (see
  :mod:`~nexus_raft.consensus.node.datadir`), so it does not start again.
* **Started with another initial configuration.** Members derive the
  cluster id from the whole initial configuration, so members started with
  different ones refuse each other's traffic (``ClusterMismatch``, naming
  their own cluster id). A node that never had a leader and holds only its
  bootstrap entries, whose peers forming a majority of its voters all name
  one other cluster, is the odd one out: it halts (``IdentityMismatch``).

Every member remembers the removals it applied (tree ``node.removed``: id ->
index; an add of the id clears it) to answer the question above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nexus_raft.consensus.core.messages import NONE, ConfChange, ConfChangeType, Role
from nexus_raft.consensus.core.quorum import majority
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.datadir import Identity, record_removal
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.tasks import cancel_and_wait
from nexus_raft.consensus.node.wire import pb
from nexus_raft.errors import (
    IdentityMismatch,
    MemberRemoved,
    NexusRaftError,
    TransportError,
)
from nexus_raft.storage import Store
from nexus_raft.transport.errors import ClusterMismatch

__all__ = ["REMOVED_TREE", "Halt", "Halting", "Standing"]

_log = logging.getLogger(__name__)

REMOVED_TREE = "node.removed"
"""Tree of the node's store: member id -> index at which its removal was applied."""


@dataclass(frozen=True, slots=True)
class Halt:
    """Why a node stopped itself: ``kind`` is ``"removed"`` or ``"misconfigured"``."""

    kind: str
    error: NexusRaftError

    @property
    def reason(self) -> str:
        """The one-line reason."""
        return str(self.error)


class Standing:
    """Watches this node's membership and cluster identity (see the module docstring).

    ``halt`` is called once, with the reason, when the node must stop.
    """

    def __init__(
        self,
        cfg: NodeConfig,
        identity: Identity,
        driver: Driver,
        peers: Peers,
        store: Store,
        log: LogStore,
        halt: Callable[[Halt], None],
    ) -> None:
        self._cfg = cfg
        self._id = cfg.id
        self._identity = identity
        self._driver = driver
        self._peers = peers
        self._store = store
        self._log = log
        self._halt = halt
        self._removed = store.tree(REMOVED_TREE)
        election = cfg.election_ticks * cfg.tick_interval
        # Leaderless this long (several election timeouts) before asking.
        self._period = max(1.0, 5 * election)
        self._grace = max(0.5, 3 * election)
        self._bootstrap_len = len(cfg.peers) if identity.origin == "bootstrapped" else 0
        self._mismatch: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._done = False

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start watching (on the running loop)."""
        self._spawn(self._watch())

    async def stop(self) -> None:
        """Stop watching. Idempotent."""
        self._done = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()  # all at once; then make sure each one ended
        for task in tasks:
            await cancel_and_wait(task)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop_with(self, halt: Halt) -> None:
        if self._done:
            return
        self._done = True
        self._halt(halt)

    # --- removals -----------------------------------------------------------------------

    def removed_at(self, node_id: int) -> int:
        """The index at which this node applied ``node_id``'s removal (0: none)."""
        raw = self._removed.get(str(node_id).encode())
        return int(raw) if raw else 0

    def conf_applied(self, index: int, cc: ConfChange) -> None:
        """A configuration change was applied (committed) at ``index``."""
        key = str(cc.node_id).encode()
        if cc.type is not ConfChangeType.REMOVE:
            self._removed.delete(key, carry=True)
            return
        # Carried: applied state, durable in order with the state machine's.
        self._removed.set(key, str(index).encode(), carry=True)
        if cc.node_id == self._id and not self._done:
            self._spawn(self._confirm_own_removal(index))

    async def _confirm_own_removal(self, index: int) -> None:
        # Give the commit a moment to reach the others (a leader removing
        # itself), and a later re-add already in the log a chance to count.
        await asyncio.sleep(self._grace)
        if not self._driver.raft.is_peer_member(self._id):
            self._removed_from(index, "it applied its own removal")

    def _removed_from(self, index: int, how: str) -> None:
        with contextlib.suppress(NexusRaftError):
            self._identity = record_removal(self._store, self._identity, index)
        self._stop_with(
            Halt(
                "removed",
                MemberRemoved(
                    f"member {self._id} was removed from cluster {self._identity.cluster_id} "
                    f"at index {index} ({how}); it stops serving"
                ),
            )
        )

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        last_leader = loop.time()
        was_member = False
        while not self._done:
            await asyncio.sleep(self._period / 4)
            d = self._driver
            if d.failed is not None:
                return
            in_config = d.raft.is_peer_member(self._id)
            was_member = was_member or in_config
            if d.leader_id != NONE and d.role is not Role.CANDIDATE:
                last_leader = loop.time()
                continue
            # A node still waiting for its first configuration (joining)
            # is not a member yet: nobody must tell it it was removed.
            if was_member and loop.time() - last_leader >= self._period:
                await self._ask_peers()
                last_leader = loop.time()  # ask again one period later

    async def _ask_peers(self) -> None:
        peers = [p for p in list(self._peers.addresses) if p != self._id]

        async def ask(peer: int) -> tuple[int, pb.ForwardResponse | None]:
            try:
                client = await self._peers.client(peer)
                request = pb.ForwardRequest(from_id=self._id, check=pb.ForwardCheck())
                return peer, await client.forward(request, timeout=1.0)
            except (TransportError, KeyError, ValueError):
                return peer, None

        answers = await asyncio.gather(*(ask(p) for p in peers))
        removed = {p: r.removed_at for p, r in answers if r is not None and not r.member
                   and r.removed_at}  # fmt: skip
        if not removed:
            return
        voters = self._driver.raft.conf_state.voters
        by_leader = [p for p, r in answers if r is not None and r.leader and p in removed]
        counted = sorted(set(removed) & voters)
        if by_leader or len(counted) >= majority(len(voters)):
            who = by_leader or counted
            self._removed_from(
                max(removed.values()),
                f"member{'s' if len(who) > 1 else ''} {', '.join(map(str, who))} no longer "
                f"count{'' if len(who) > 1 else 's'} it in the configuration",
            )
        else:
            _log.warning(
                "node %d: members %s say this member was removed; waiting for the leader or a "
                "majority to confirm", self._id, ", ".join(map(str, sorted(removed))),
            )  # fmt: skip

    # --- another cluster ------------------------------------------------------------------

    def peer_error(self, peer: int, exc: Exception) -> None:
        """A call to ``peer`` failed with ``exc`` (counts peers of another cluster)."""
        if not isinstance(exc, ClusterMismatch) or not exc.remote_cluster_id or self._done:
            return
        self._mismatch[peer] = exc.remote_cluster_id
        self._judge_mismatch()

    def _judge_mismatch(self) -> None:
        # Only a member that never took part in its cluster: it holds nothing
        # but its bootstrap entries (any leader appends an entry of its own).
        if not self._bootstrap_len or self._log.last_index() > self._bootstrap_len:
            return
        voters = self._driver.raft.conf_state.voters
        mine = self._identity.cluster_id
        for other in set(self._mismatch.values()):
            agree = sorted(p for p, c in self._mismatch.items() if c == other and p in voters)
            if other != mine and len(agree) >= majority(len(voters)):
                self._stop_with(
                    Halt(
                        "misconfigured",
                        IdentityMismatch(
                            f"members {', '.join(map(str, agree))} belong to cluster {other}, but "
                            f"this member's initial configuration (--peers/--witness/--learner) "
                            f"makes it cluster {mine}: start every member with the same "
                            f"configuration (and this one with an empty data directory: "
                            f"{self._cfg.data_dir} holds only that bootstrap)"
                        ),
                    )
                )
                return


class Halting:
    """The halting part of RaftNode's API (a mixin): why the node stopped itself.

    The node provides ``id``, ``shutdown()``, ``_running()`` and ``_standing``.
    """

    _standing: Standing | None

    def _init_halting(self) -> None:
        self._halt: Halt | None = None
        self._halted = asyncio.Event()
        self._halting: asyncio.Task[None] | None = None

    @property
    def id(self) -> int:  # pragma: no cover - RaftNode's
        raise NotImplementedError

    async def shutdown(self) -> None:  # pragma: no cover - RaftNode's
        raise NotImplementedError

    def _running(self) -> Driver:  # pragma: no cover - RaftNode's
        raise NotImplementedError

    @property
    def halted(self) -> Halt | None:
        """Why this node stopped itself (removed, or misconfigured), or None."""
        return self._halt

    async def wait_halted(self) -> Halt:
        """Wait until the node stops itself; returns why (see the module docstring)."""
        await self._halted.wait()
        assert self._halt is not None
        return self._halt

    def _halt_with(self, halt: Halt) -> None:
        if self._halt is not None:
            return
        self._halt = halt
        _log.error("node %d: %s", self.id, halt.reason)
        self._halting = asyncio.get_running_loop().create_task(self._halt_now())

    async def _halt_now(self) -> None:
        await self.shutdown()
        self._halted.set()

    def membership_of(self, node_id: int) -> tuple[bool, int]:
        """(is ``node_id`` in this node's configuration, index its removal was applied at)."""
        d = self._running()
        removed = self._standing.removed_at(node_id) if self._standing is not None else 0
        return d.raft.is_peer_member(node_id), removed
