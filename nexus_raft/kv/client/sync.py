"""SyncClient: the :class:`~nexus_raft.kv.client.client.Client` API, blocking.

For code without an event loop (scripts, threads, web frameworks that are not
async). It runs a private event loop in a daemon thread and hands each call
to it; the calling thread blocks until the answer. Safe to use from several
threads at once: their calls meet on the one loop and are coalesced into
batches just like concurrent coroutines.

::

    with SyncClient("127.0.0.1:7001,127.0.0.1:7002") as c:
        c.put("k", b"v")
        for event in c.watch("k", start_revision=1):
            ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from nexus_raft.errors import NexusRaftError
from nexus_raft.kv.client.client import Client
from nexus_raft.kv.client.types import MemberInfo, NodeInfo, WatchEvent
from nexus_raft.kv.client.watch import WatchStream

__all__ = ["SyncClient", "SyncWatch"]

_T = TypeVar("_T")


class SyncClient:
    """Blocking twin of :class:`Client`; same arguments, same methods, same errors."""

    def __init__(self, endpoints: Sequence[str] | str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nexus-sync-client", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._client = self._run(_make_client(endpoints, options))
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise NexusRaftError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and stop its thread (idempotent)."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def leader(self) -> str | None:
        """See :attr:`Client.leader`."""
        return self._client.leader

    @property
    def endpoints(self) -> list[str]:
        """See :attr:`Client.endpoints` (given and learned member addresses)."""
        return self._client.endpoints

    def put(self, key: bytes | str, value: bytes, *, timeout: float | None = None) -> int:
        """See :meth:`Client.put`."""
        return self._run(self._client.put(key, value, timeout=timeout))

    def get(
        self, key: bytes | str, *, serializable: bool = False, timeout: float | None = None
    ) -> bytes | None:
        """See :meth:`Client.get`."""
        return self._run(self._client.get(key, serializable=serializable, timeout=timeout))

    def get_with_revision(
        self, key: bytes | str, *, serializable: bool = False, timeout: float | None = None
    ) -> tuple[bytes | None, int]:
        """See :meth:`Client.get_with_revision`."""
        return self._run(
            self._client.get_with_revision(key, serializable=serializable, timeout=timeout)
        )

    def delete(self, key: bytes | str, *, timeout: float | None = None) -> bool:
        """See :meth:`Client.delete`."""
        return self._run(self._client.delete(key, timeout=timeout))

    def cas(
        self,
        key: bytes | str,
        expected: bytes | None,
        new: bytes | None,
        *,
        timeout: float | None = None,
    ) -> bool:
        """See :meth:`Client.cas`."""
        return self._run(self._client.cas(key, expected, new, timeout=timeout))

    def list_keys(
        self,
        prefix: bytes | str = b"",
        *,
        limit: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> list[bytes]:
        """See :meth:`Client.list_keys`."""
        return self._run(
            self._client.list_keys(prefix, limit=limit, serializable=serializable, timeout=timeout)
        )

    def get_prefixes(
        self, prefix: bytes | str = b"", *, serializable: bool = False, timeout: float | None = None
    ) -> list[bytes]:
        """See :meth:`Client.get_prefixes`."""
        return self._run(
            self._client.get_prefixes(prefix, serializable=serializable, timeout=timeout)
        )

    def watch(self, prefix: bytes | str = b"", *, start_revision: int = 0) -> SyncWatch:
        """See :meth:`Client.watch`; returns a blocking iterator."""
        return SyncWatch(self, self._run(_open_watch(self._client, prefix, start_revision)))

    def status(
        self, *, endpoint: str | None = None, timeout: float | None = None,
        fail_fast: bool = False,
    ) -> NodeInfo:
        """See :meth:`Client.status`."""
        return self._run(
            self._client.status(endpoint=endpoint, timeout=timeout, fail_fast=fail_fast)
        )

    def members(self, *, timeout: float | None = None) -> list[MemberInfo]:
        """See :meth:`Client.members`."""
        return self._run(self._client.members(timeout=timeout))

    def add_member(
        self, node_id: int, address: str, *, role: str = "voter", timeout: float | None = None
    ) -> None:
        """See :meth:`Client.add_member`."""
        self._run(self._client.add_member(node_id, address, role=role, timeout=timeout))

    def remove_member(self, node_id: int, *, timeout: float | None = None) -> None:
        """See :meth:`Client.remove_member`."""
        self._run(self._client.remove_member(node_id, timeout=timeout))

    def transfer_leader(self, node_id: int, *, timeout: float | None = None) -> None:
        """See :meth:`Client.transfer_leader`."""
        self._run(self._client.transfer_leader(node_id, timeout=timeout))

    def snapshot(self, *, endpoint: str | None = None, timeout: float | None = None) -> int:
        """See :meth:`Client.snapshot`."""
        return self._run(self._client.snapshot(endpoint=endpoint, timeout=timeout))


class SyncWatch:
    """Blocking iterator over a :class:`WatchStream`; ``close()`` or ``with``."""

    def __init__(self, owner: SyncClient, stream: WatchStream) -> None:
        self._owner = owner
        self._stream = stream

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        try:
            return self._owner._run(_next_event(self._stream))
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> SyncWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if not self._owner._closed:
            self._owner._run(self._stream.close())

    @property
    def position(self) -> int:
        """See :attr:`WatchStream.position`."""
        return self._stream.position

    @property
    def reconnects(self) -> int:
        """See :attr:`WatchStream.reconnects`."""
        return self._stream.reconnects


async def _make_client(endpoints: Sequence[str] | str, options: dict[str, Any]) -> Client:
    return Client(endpoints, **options)


async def _open_watch(client: Client, prefix: bytes | str, start_revision: int) -> WatchStream:
    # Created on the loop thread: the client's bookkeeping is not thread-safe.
    return client.watch(prefix, start_revision=start_revision)


async def _next_event(stream: WatchStream) -> WatchEvent:
    return await stream.__anext__()
