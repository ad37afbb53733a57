"""Publishing this member's attributes through the log (see ``attributes.py``).

After start, a member proposes its :class:`MemberAttributes` (name, client
URL) until one proposal is applied, unless the applied book already holds
exactly these attributes (a restart with the same settings writes nothing).
A follower or witness hands the proposal to the leader (follower
forwarding). Failures are retried with a capped backoff for as long as the
node runs, as etcd retries its publish: a member that cannot reach a leader
has nobody to publish to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from nexus_raft.consensus.node.attributes import (
    AttributeBook,
    MemberAttributes,
    encode_publish,
)
from nexus_raft.consensus.node.tasks import cancel_and_wait
from nexus_raft.errors import NexusRaftError

__all__ = ["Publisher", "own_attributes"]

_log = logging.getLogger(__name__)


class PublishTarget(Protocol):
    """What the publisher needs of the node (``RaftNode`` implements it)."""

    @property
    def id(self) -> int: ...

    async def wait_for_leader(self, timeout: float = 5.0) -> int: ...

    async def propose(
        self, command: bytes, *, timeout: float = 5.0, forward: bool = False
    ) -> bytes: ...


def own_attributes(name: str, endpoint: str | None, tls: bool) -> MemberAttributes:
    """This member's attributes: ``name`` and ``endpoint`` as a URL (``https`` with ``tls``)."""
    if endpoint is None:
        return MemberAttributes(name, ())
    url = endpoint if "://" in endpoint else f"{'https' if tls else 'http'}://{endpoint}"
    return MemberAttributes(name, (url,))


class Publisher:
    """Proposes ``attrs`` for ``node`` until applied (``start()``/``stop()`` on the node's loop)."""

    def __init__(
        self,
        node: PublishTarget,
        attrs: MemberAttributes,
        book: AttributeBook,
        *,
        timeout: float,
        max_delay: float = 5.0,
    ) -> None:
        self._node = node
        self.attrs = attrs
        self._book = book
        self._timeout = timeout
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.done = asyncio.Event()

    def start(self) -> None:
        """Begin publishing (a no-op when the book already holds these attributes)."""
        if self._book.get(self._node.id) == self.attrs:
            self.done.set()
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"publish-{self._node.id}"
        )

    async def _run(self) -> None:
        command = encode_publish(self._node.id, self.attrs)
        delay = min(0.1, self._max_delay)
        while not self._stopped:
            try:
                await self._node.wait_for_leader(timeout=self._timeout)
                await self._node.propose(command, timeout=self._timeout, forward=True)
            except NexusRaftError as exc:
                _log.debug("member %d: publishing attributes failed: %s", self._node.id, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, self._max_delay)
                continue
            _log.info(
                "member %d published its attributes: name %r, client URLs %s",
                self._node.id,
                self.attrs.name,
                ", ".join(self.attrs.client_urls) or "none",
            )
            self.done.set()
            return

    async def stop(self) -> None:
        """Stop trying (idempotent)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
