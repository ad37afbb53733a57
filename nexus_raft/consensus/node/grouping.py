"""Proposals that reach the leader together become ONE log entry (``GroupsCommands``).

With many proposers (hundreds of clients, a busy service) each ``propose``
used to be its own entry: encoded, replicated, persisted and applied one by
one. When the state machine can apply a group of commands in one entry
(:class:`~nexus_raft.consensus.state_machine.GroupsCommands`), the leader's
``propose`` calls are queued and the whole queue is appended in the driver's
next turn: one command alone as it is, two or more as one group entry of at
most :data:`GROUP_MAX_BYTES` (larger runs are split in several groups; a
command too large for any group goes alone, and the core refuses it alone).
The node's own entries (member attributes) are never grouped: the node, not
the state machine, reads them when they are applied.

Nothing changes for a caller: each ``propose`` still gets its own command's
result, or the error that ended it (the whole group's: a group entry commits,
is overwritten or is refused as a unit). A caller that timed out before the
queue was appended is left out. A lone proposer pays nothing: it is appended
in the same driver turn as before, as a plain entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nexus_raft.consensus.core.messages import Accepted, Rejected
from nexus_raft.consensus.node.apply import Proposals, SplitWaiter
from nexus_raft.consensus.node.attributes import is_publish
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.state_machine import GroupsCommands
from nexus_raft.errors import ConsensusError, NexusRaftError

__all__ = ["GROUP_MAX_BYTES", "ProposalGrouper"]

GROUP_MAX_BYTES = 4 << 20
"""Largest payload of one group entry (the node refuses proposals over 8 MiB by default)."""


class ProposalGrouper:
    """The leader's queue of single proposals, appended once per driver turn.

    Invariant: ``_scheduled`` is True exactly while a flush is in the
    driver's inbox; everything in ``_queue`` is appended by that flush.
    """

    def __init__(
        self,
        driver: Driver,
        sm: GroupsCommands,
        proposals: Proposals,
        rejection: Callable[[Rejected], NexusRaftError],
        max_bytes: int,
    ) -> None:
        self.driver = driver
        self._sm = sm
        self._proposals = proposals
        self._rejection = rejection
        self._max_bytes = min(GROUP_MAX_BYTES, max_bytes)
        self._queue: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._scheduled = False
        self.groups = 0
        """Group entries appended so far (for tests and metrics)."""

    def add(self, data: bytes, fut: asyncio.Future[bytes]) -> None:
        """Queue ``data``; ``fut`` gets its result (raises Unavailable if the node stopped)."""
        self._queue.append((data, fut))
        if self._scheduled:
            return
        try:
            self.driver.submit(self._flush)
        except NexusRaftError as exc:
            queue, self._queue = self._queue, []
            for _, waiting in queue:
                if not waiting.done():
                    waiting.set_exception(exc)
            raise
        self._scheduled = True

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        run: list[tuple[bytes, asyncio.Future[bytes]]] = []
        size = 0
        for item in queue:
            if item[1].done():
                continue  # timed out meanwhile: do not append what nobody awaits
            data = item[0]
            if data[:1] == b"\0" and is_publish(data):
                # The node's own entries (member attributes) are read by the
                # node at apply time, never by the state machine: never grouped.
                if run:
                    self._append(run)
                    run, size = [], 0
                self._append([item])
                continue
            length = len(data)
            if run and size + length > self._max_bytes:
                self._append(run)
                run, size = [], 0
            run.append(item)
            size += length
        if run:
            self._append(run)

    def _append(self, run: list[tuple[bytes, asyncio.Future[bytes]]]) -> None:
        raft = self.driver.raft
        proposals = self._proposals
        if len(run) == 1:
            data, fut = run[0]
            out = raft.propose(data)
            if isinstance(out, Accepted):
                proposals.add(out.index, out.term, fut)
                return
            futs = [fut]
        else:
            futs = [fut for _, fut in run]
            payload = self._sm.group_commands([data for data, _ in run])
            out = raft.propose(payload)
            if isinstance(out, Accepted):
                self.groups += 1
                waiter = SplitWaiter(futs, self._sm.split_group_result)
                proposals.add_to_group(out.index, out.term, waiter, 0)
                return
        error: NexusRaftError = (
            self._rejection(out)
            if isinstance(out, Rejected)
            else ConsensusError(f"unexpected outcome {out!r}")
        )
        proposals.failed += len(futs)
        for fut in futs:
            if not fut.done():
                fut.set_exception(error)
