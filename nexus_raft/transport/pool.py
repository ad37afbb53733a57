"""RaftClientPool: one shared RaftClient per node id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType

from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.client import RaftClient
from nexus_raft.transport.errors import ClientClosed
from nexus_raft.transport.options import DEFAULT_CLUSTER_ID, MAX_MESSAGE_BYTES, Timeouts
from nexus_raft.transport.tls import TLSConfig

__all__ = ["RaftClientPool"]

_log = logging.getLogger(__name__)


class RaftClientPool:
    """Hands out one :class:`RaftClient` (one gRPC channel) per node id.

    ``get(address)`` returns the existing client while the node's address is
    unchanged; when the same node id shows up with another endpoint (or TLS
    setting) the old client is closed (its channel and streams with it) and a
    new one replaces it. Every client shares the pool's ``cluster_id``,
    ``tls``, ``timeouts`` and message-size limit.
    """

    def __init__(
        self,
        *,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        tls: TLSConfig | None = None,
        timeouts: Timeouts | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        extra_channel_options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        if not isinstance(cluster_id, str):
            raise TypeError(f"cluster_id must be str, not {type(cluster_id).__name__}")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be TLSConfig or None, not {type(tls).__name__}")
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise TypeError(f"timeouts must be Timeouts or None, not {type(timeouts).__name__}")
        self._cluster_id = cluster_id
        self._tls = tls
        self._timeouts = timeouts
        self._max_message_bytes = max_message_bytes
        self._extra_options = tuple(extra_channel_options)
        self._clients: dict[int, RaftClient] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __len__(self) -> int:
        return len(self._clients)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._clients

    def node_ids(self) -> list[int]:
        """Ids of the nodes that currently have a client, sorted."""
        return sorted(self._clients)

    async def get(self, address: NodeAddress) -> RaftClient:
        """The shared client for ``address.node_id`` (created, or replaced on a new address)."""
        if not isinstance(address, NodeAddress):
            raise TypeError(f"address must be NodeAddress, not {type(address).__name__}")
        client = self._clients.get(address.node_id)
        if client is not None and client.address.same_destination(address):
            return client  # fast path: no lock, no await
        async with self._lock:
            if self._closed:
                raise ClientClosed("client pool is closed")
            client = self._clients.get(address.node_id)
            if client is not None and client.address.same_destination(address):
                return client
            if client is not None:
                _log.info(
                    "node %d moved from %s to %s: replacing its channel",
                    address.node_id, client.address.endpoint, address.endpoint,
                )
                del self._clients[address.node_id]
                await client.close()
            client = RaftClient(
                address,
                cluster_id=self._cluster_id,
                tls=self._tls,
                timeouts=self._timeouts,
                max_message_bytes=self._max_message_bytes,
                extra_channel_options=self._extra_options,
            )
            self._clients[address.node_id] = client
            return client

    async def remove(self, node_id: int) -> bool:
        """Close and forget the client for ``node_id``; False if there was none."""
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise TypeError(f"node_id must be int, not {type(node_id).__name__}")
        async with self._lock:
            client = self._clients.pop(node_id, None)
        if client is None:
            return False
        await client.close()
        return True

    async def close(self) -> None:
        """Close every client; later ``get()`` calls raise ClientClosed. Idempotent."""
        async with self._lock:
            self._closed = True
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            await client.close()

    async def __aenter__(self) -> RaftClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
