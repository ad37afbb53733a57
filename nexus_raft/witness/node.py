"""``WitnessNode``: a vote-only cluster member on storage and the gRPC transport.

The witness is a :class:`~nexus_raft.consensus.node.node.RaftNode` in witness mode
(``config.id in config.witnesses``), composed here rather than re-implemented:
the node runs the core in the witness role, persists a metadata log on
:mod:`nexus_raft.storage` and serves peer traffic on its listen port. What the
witness adds on top:

- the client-facing KV service over :class:`~nexus_raft.witness.service.WitnessFrontend`
  (no data: reads and writes are redirected to the leader), which also is the
  witness's status endpoint (``Status``/``Members`` RPCs, ``nexusctl status``);
- :meth:`WitnessNode.status`: its view plus the measured footprint (payload
  floor, disk bytes, resident memory).

What the core guarantees for a witness (see ``consensus/core``): it persists
term, vote and the (index, term, type) of every entry, configuration entries
in full; it gets payloads only while some full voter lags and drops them once
every full voter has them (``LogStore.drop_payloads``); it votes with the
normal up-to-date check; it campaigns only when it holds entries the surviving
full voters lack, and then hands leadership to a full voter at once.
"""

from __future__ import annotations

import logging

from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.errors import ConsensusError, Unavailable
from nexus_raft.kv.service.kv import KVService
from nexus_raft.witness.config import check_witness_config
from nexus_raft.witness.footprint import disk_bytes, rss_bytes
from nexus_raft.witness.service import WitnessFrontend
from nexus_raft.witness.status import WitnessStatus

__all__ = ["WitnessNode"]

_log = logging.getLogger(__name__)


class WitnessNode:
    """A witness member: ``start()``, ``status()``, ``wait_for_leader()``, ``shutdown()``.

    ``config`` must name this node as a witness (build it with
    :func:`~nexus_raft.witness.config.witness_config`). Use as
    ``async with WitnessNode(config) as w: ...`` or call ``start()`` and
    ``shutdown()`` (idempotent) yourself.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = check_witness_config(config)
        self._node = RaftNode(config)
        self._frontend = WitnessFrontend(self._node)
        # The cluster id is read per request: the one the data directory recorded.
        self._node.add_servicer(KVService(self._frontend).register)
        self._started = False

    # --- properties -------------------------------------------------------------------

    @property
    def id(self) -> int:
        """This witness's member id."""
        return self.config.id

    @property
    def cluster_id(self) -> str:
        """The cluster id every peer and client request must carry."""
        return self._node.cluster_id

    @property
    def node(self) -> RaftNode:
        """The underlying witness-mode RaftNode (for embedding and tests)."""
        return self._node

    @property
    def port(self) -> int:
        """The bound listen port (after ``start()``)."""
        return self._node.port

    @property
    def leader_id(self) -> int | None:
        """The known leader (this witness itself while it hands entries over), or None."""
        return self._node.leader_id

    @property
    def leader_address(self) -> str | None:
        """The known leader's endpoint, or None."""
        return self._node.leader_address

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the data directory, recover term, vote and log, and start serving."""
        if self._started:
            raise ConsensusError("WitnessNode.start() called twice")
        self._started = True
        await self._node.start()
        st = self._node.status()
        _log.info("witness %d serving on %s (cluster %s, term %d, last index %d)",
                  self.id, self.config.listen, self.cluster_id, st.term, st.last_index)

    async def shutdown(self) -> None:
        """Stop serving and close the store. Idempotent."""
        await self._node.shutdown()

    async def __aenter__(self) -> WitnessNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # --- views ------------------------------------------------------------------------------

    async def wait_for_leader(self, timeout: float = 5.0) -> int:
        """Wait until a leader is known; returns its id (``Timeout`` when none in time)."""
        return await self._node.wait_for_leader(timeout)

    def _endpoint(self) -> str:
        """The listen address with the bound port (``--listen HOST:0`` picks one)."""
        host, _, port = self.config.listen.rpartition(":")
        return f"{host}:{self._node.port}" if port == "0" else self.config.listen

    def status(self) -> WitnessStatus:
        """The witness's view and footprint (``Unavailable`` when not running)."""
        if not self._started:
            raise Unavailable("witness is not started")
        st = self._node.status()
        return WitnessStatus.from_node(
            st,
            cluster_id=self.cluster_id,
            listen=self._endpoint(),
            disk_bytes=disk_bytes(self.config.data_dir),
            rss_bytes=rss_bytes(),
        )
