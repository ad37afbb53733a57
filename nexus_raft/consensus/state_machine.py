"""The replicated state machine contract between a RaftNode and the application.

The node applies committed entries in log order. Entries with an empty
payload (a new leader's no-op) and configuration entries are not passed to
``apply``; the node reports them with ``note_applied`` so that the applied
index still covers them. A durable state machine writes its applied index in
the same write as the data it applied, which makes application exactly-once
across restarts: the node replays from ``open()``'s answer and the state
machine ignores indexes it has already applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from nexus_raft.storage import Store

__all__ = ["ChunkedSnapshot", "ProvidesMetrics", "ServesClients", "SnapshotSource", "StateMachine"]


@runtime_checkable
class SnapshotSource(Protocol):
    """A state-machine snapshot being streamed out.

    ``index`` is the applied index the snapshot covers; iterating yields the
    data as bytes chunks (bounded size, read from a consistent view, never
    the whole state in memory); ``close()`` releases the view. Iterate once.
    """

    @property
    def index(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


@runtime_checkable
class StateMachine(Protocol):
    """What a RaftNode drives. See the module docstring for the call order."""

    def open(self, store: Store) -> int:
        """Bind to the node's store; return the applied index (0 if in-memory)."""
        ...

    def apply(self, index: int, command: bytes) -> bytes:
        """Apply one committed command; the result goes back to its proposer."""
        ...

    def apply_batch(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        """Apply many commands (ascending index) in ONE write including the applied index."""
        ...

    def note_applied(self, index: int) -> None:
        """Advance the applied index over an entry that carried no command."""
        ...

    def applied_index(self) -> int:
        """The highest index applied (durably, for a store-backed state machine)."""
        ...

    def snapshot(self) -> SnapshotSource:
        """Start streaming a snapshot of the applied state."""
        ...

    def restore(self, index: int, chunks: Iterable[bytes]) -> None:
        """Replace the whole state with a snapshot's (``index`` is its applied index)."""
        ...

    def close(self) -> None:
        """Release resources; idempotent."""
        ...


@runtime_checkable
class ServesClients(Protocol):
    """Optional: a state machine that brings its own client-facing gRPC services.

    A :class:`~nexus_raft.consensus.RaftNode` given such a state machine (and
    no servicers of its own via ``add_servicer``) registers what
    ``client_services(node)`` returns on its listen port at start. This is how
    an application (``nexus_raft.kv``) puts its API on a node while the node
    stays generic: the node never imports the application.
    """

    def client_services(self, node: Any) -> Sequence[Callable[[Any], None]]:
        """Callables that each register one servicer on a ``grpc.aio.Server``."""
        ...


@runtime_checkable
class ProvidesMetrics(Protocol):
    """Optional: a state machine with Prometheus metrics of its own.

    A :class:`~nexus_raft.consensus.RaftNode` registers what
    ``metrics_collectors()`` returns (``prometheus_client`` collectors) in its
    registry, so they appear on the node's ``/metrics`` next to its Raft metrics.
    """

    def metrics_collectors(self) -> Sequence[Any]:
        """``prometheus_client`` collectors to register on the node."""
        ...


class ChunkedSnapshot:
    """A :class:`SnapshotSource` over a chunk generator and a release callback.

    The generator runs lazily, so memory is one chunk at a time; ``close()``
    (also at the end of iteration, or via ``with``) releases the underlying
    view exactly once.
    """

    __slots__ = ("_chunks", "_closed", "_index", "_release")

    def __init__(self, index: int, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._index = index
        self._chunks = chunks
        self._release = release
        self._closed = False

    @property
    def index(self) -> int:
        """The applied index the snapshot covers."""
        return self._index

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def close(self) -> None:
        """Release the view; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def __enter__(self) -> ChunkedSnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChunkedSnapshot(index={self._index}, closed={self._closed})"


@runtime_checkable
class GroupsCommands(Protocol):
    """Optional: a state machine that applies several commands carried in ONE log entry.

    A :class:`~nexus_raft.consensus.RaftNode` whose state machine has these
    methods appends the proposals that reach its leader together (``propose``
    calls queued in the same turn of the node's driver) as one entry instead
    of one entry each: one entry to encode, replicate, persist and apply.
    The state machine must apply a group exactly as it would apply its
    commands one after the other, each with its own result.

    ``group_commands(commands)`` returns the payload of the entry carrying
    ``commands`` (two or more); ``split_group_result(result, count)`` splits
    that entry's result into ``count`` results, in order, and raises
    ``ValueError`` when ``result`` is not a group result of ``count``.
    """

    def group_commands(self, commands: Sequence[bytes]) -> bytes:
        """The payload of one entry carrying ``commands``, applied in order."""
        ...

    def split_group_result(self, result: bytes, count: int) -> list[bytes]:
        """The results of the commands of a group entry whose result is ``result``."""
        ...
