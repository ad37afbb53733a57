"""The client-facing side of a witness: the KV API that holds no data.

Clients (``Client``, ``nexusctl``) may be given the witness's address among
the endpoints, so the witness serves the same ``nexus.kv.KV`` service as a
full member on its listen port, through the ordinary
:class:`~nexus_raft.kv.service.kv.KVService`, but over
:class:`WitnessFrontend` instead of the node itself. The frontend has no state
machine and refuses every data operation, so no read is ever answered with
data and no write is ever accepted here:

- a leader other than the witness is known: ``NOT_LEADER`` with its id and
  address (the client re-sends there);
- the witness itself leads (briefly, while it brings a lagging full voter up
  to date before handing leadership over) or no leader is known:
  ``UNAVAILABLE`` (the client backs off and retries; pointing it at the
  witness would only bounce it back here).

``Status`` and ``Members`` answer with the witness's own view of the cluster;
``Snapshot`` compacts the witness's log, but only when that cannot discard
a payload some full member still lacks.
Administrative calls (add/remove member, transfer leadership) are redirected
like writes: they must run on a full leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import NotLeader, Unavailable

__all__ = ["WitnessFrontend"]


class WitnessFrontend:
    """What :class:`~nexus_raft.kv.service.kv.KVService` serves on a witness.

    Implements the service's ``ServedNode`` protocol over a witness-mode
    :class:`~nexus_raft.consensus.node.node.RaftNode`; see the module docstring.
    """

    def __init__(self, node: RaftNode) -> None:
        if not isinstance(node, RaftNode):
            raise TypeError(f"node must be a RaftNode, not {type(node).__name__}")
        if not node.config.is_witness:
            raise TypeError("node must be a witness-mode RaftNode (config.id in witnesses)")
        self._node = node

    @property
    def cluster_id(self) -> str:
        """The cluster id requests must carry."""
        return self._node.cluster_id

    @property
    def state_machine(self) -> Any:
        """Always None: a witness holds no data (the service answers reads NOT_LEADER)."""
        return None

    @property
    def is_leader(self) -> bool:
        """Always False: even while the witness leads it accepts no client request."""
        return False

    @property
    def leader_id(self) -> int | None:
        """The leader clients should use: a known leader other than this witness."""
        lid = self._node.leader_id
        return None if lid is None or lid == self._node.id else lid

    @property
    def leader_address(self) -> str | None:
        """The endpoint of :attr:`leader_id`, or None."""
        return None if self.leader_id is None else self._node.leader_address

    def _redirect(self, what: str) -> NoReturn:
        lid = self.leader_id
        if lid is not None:
            raise NotLeader(
                f"node {self._node.id} is a witness and holds no data; {what} goes to the "
                f"leader {lid} at {self.leader_address}",
                leader_id=lid,
                leader_address=self.leader_address,
            )
        if self._node.leader_id == self._node.id:
            raise Unavailable(
                f"node {self._node.id} is a witness leading only to bring a full member up to "
                f"date; {what} must wait for the hand-over, retry shortly"
            )
        raise Unavailable(f"node {self._node.id} is a witness and knows no leader; retry shortly")

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes:
        """Refused: NOT_LEADER (or UNAVAILABLE); see the module docstring.

        A witness never forwards (``forward`` is ignored): it is not on the
        data path, so clients are pointed at the leader instead.
        """
        self._redirect("a write")

    async def propose_many(
        self, commands: Sequence[bytes], *, timeout: float = 5.0, forward: bool = False
    ) -> Sequence[bytes | BaseException]:
        """Refused as a whole: NOT_LEADER (or UNAVAILABLE), like :meth:`propose`."""
        self._redirect("a write")

    async def read_index(self, *, timeout: float = 5.0) -> int:
        """Refused: NOT_LEADER (or UNAVAILABLE); a witness cannot serve reads."""
        self._redirect("a read")

    def status(self) -> Any:
        """The witness's own view (role, term, leader, indexes, members)."""
        return self._node.status()

    async def add_member(
        self, node_id: int, endpoint: str, role: str = "voter", *, forward: bool = False
    ) -> None:
        """Refused: membership changes run on a full leader."""
        self._redirect("a membership change")

    async def remove_member(self, node_id: int, *, forward: bool = False) -> None:
        """Refused: membership changes run on a full leader."""
        self._redirect("a membership change")

    async def transfer_leadership(self, node_id: int, *, forward: bool = False) -> None:
        """Refused: a transfer is asked of the (full) leader."""
        self._redirect("a leadership transfer")

    async def snapshot(self, *, forward: bool = False) -> int:
        """Compact this witness's log up to its applied index; returns the index.

        ``forward`` (snapshot the leader) is redirected like a write.

        Refused (``Unavailable``) while the witness holds payloads of entries at
        or below that index: a full member that is down or lagging still needs
        them, and after compaction the witness could no longer hand them over.
        """
        if forward:
            self._redirect("a leader snapshot")
        st = self._node.status()
        floor = next((m.payload_floor for m in st.members if m.id == st.id), 0)
        if floor < st.applied:
            raise Unavailable(
                f"witness {st.id} holds payloads above index {floor} that a full member still "
                f"needs; compacting to {st.applied} now could lose them, retry once it caught up"
            )
        return await self._node.snapshot()
