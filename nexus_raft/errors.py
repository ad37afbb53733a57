"""One exception hierarchy for the whole package.

Every error nexus_raft raises on purpose derives from :class:`NexusRaftError`.
Misuse with the wrong Python type raises the standard :class:`TypeError`
instead; that is a programming error, not a runtime condition.
"""

from __future__ import annotations


class NexusRaftError(Exception):
    """Base of every error nexus_raft raises on purpose."""


# --- storage -----------------------------------------------------------------


class StorageError(NexusRaftError):
    """The embedded store failed or was misused."""


class StoreLockedError(StorageError):
    """The store is already open, in this process or in another one."""


class StoreClosedError(StorageError):
    """The store (or a view of it) was used after ``close()``."""


class CorruptionError(StorageError):
    """The on-disk data is damaged or not what this version wrote."""


# --- transport -----------------------------------------------------------------


class TransportError(NexusRaftError):
    """A peer RPC failed; subclasses live in :mod:`nexus_raft.transport.errors`."""


# --- consensus -----------------------------------------------------------------


class ConsensusError(NexusRaftError):
    """A Raft-level request could not be carried out."""


class NotLeader(ConsensusError):
    """This member is not the leader; ``leader_id``/``leader_address`` say who is, if known."""

    def __init__(
        self,
        message: str = "not the leader",
        *,
        leader_id: int | None = None,
        leader_address: str | None = None,
    ) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_address = leader_address


class ProposalDropped(ConsensusError):
    """A proposal was not appended, or was overwritten before it committed."""


class Unavailable(ConsensusError):
    """No member could serve the request (no quorum, no leader, unreachable)."""


class Timeout(ConsensusError, TimeoutError):
    """The request's deadline passed before it completed."""


class InvalidArgument(ConsensusError, ValueError):
    """The KV service rejected a request as malformed (bad key, bad member id, ...)."""


class UnsafeRemoval(InvalidArgument):
    """A membership removal was refused: it would leave committed data with one durable copy.

    With a witness in the configuration every committed entry must stay on
    two full members (the witness may have dropped its copy). Bring the
    lagging full member up to date, or add a full member first, then retry.
    A subclass of ``InvalidArgument`` so that the KV service answers it as a
    final error that clients do not retry.
    """


class TooLarge(InvalidArgument):
    """A key, value or request exceeds the KV service's size limits."""


class ClusterMismatch(ConsensusError):
    """The request (or peer) belongs to a different cluster id."""


class Compacted(ConsensusError):
    """A watch or read asked for a revision older than the retained history.

    ``revision`` is the oldest revision still available (0: not said).
    """

    def __init__(self, message: str = "", *, revision: int = 0) -> None:
        super().__init__(message)
        self.revision = revision


class InvalidCommand(ConsensusError, ValueError):
    """A state-machine command (or its result) is malformed or breaks a limit."""


class MemberRemoved(ConsensusError):
    """This member was removed from the cluster's configuration; it stopped serving."""


class RaftUsageError(ConsensusError):
    """The Raft core or a log storage was called against its contract.

    Examples: appending entries with a gap, compacting past the last index,
    ``advance()`` with a ``Ready`` that ``ready()`` did not hand out.
    """


class ConfigError(NexusRaftError, ValueError):
    """A configuration value is invalid."""


class IdentityMismatch(ConfigError):
    """A data directory belongs to another member or cluster than the configuration names.

    Also raised when members started with different initial configurations
    meet: the member whose configuration disagrees with its peers' stops.
    """
