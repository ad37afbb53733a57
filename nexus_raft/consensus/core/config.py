"""Configuration of one Raft core instance (logical ticks, sizes, switches)."""

from __future__ import annotations

from dataclasses import dataclass

from nexus_raft.errors import ConfigError

__all__ = ["Config"]

_INT_FIELDS = (
    "id",
    "election_tick",
    "heartbeat_tick",
    "max_size_per_msg",
    "max_entries_per_msg",
    "max_inflight_msgs",
    "applied",
    "max_proposal_bytes",
)


@dataclass(frozen=True, slots=True)
class Config:
    """Knobs of the core; every duration is in logical ticks.

    - ``election_tick``: a follower that hears nothing from a leader for a
      randomized timeout in ``[election_tick, 2 * election_tick)`` ticks
      campaigns; a leader that hears from no quorum for ``election_tick``
      ticks steps down (``check_quorum``). Must exceed ``heartbeat_tick``.
    - ``heartbeat_tick``: ticks between a leader's heartbeats.
    - ``max_size_per_msg`` / ``max_entries_per_msg``: batching limits of one
      AppendRequest (at least one entry is always sent).
    - ``max_inflight_msgs``: AppendRequests in flight to one follower in the
      replicate state (flow control).
    - ``pre_vote``: run a pre-election first so a partitioned node rejoining
      does not disrupt a healthy leader by bumping the term.
    - ``check_quorum``: a leader steps down without a live quorum, and a
      follower ignores vote requests while it hears from a leader (lease).
    - ``applied``: the index the caller's state machine has applied (restart).
    - ``max_proposal_bytes``: larger proposals are rejected (0 = no limit).
    """

    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 1 << 20
    max_entries_per_msg: int = 4096
    max_inflight_msgs: int = 256
    pre_vote: bool = True
    check_quorum: bool = True
    applied: int = 0
    max_proposal_bytes: int = 0

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        for name in ("pre_vote", "check_quorum"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        if self.id <= 0:
            raise ConfigError("id must be a positive int (0 means 'none')")
        if self.heartbeat_tick < 1:
            raise ConfigError("heartbeat_tick must be >= 1")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election_tick must be greater than heartbeat_tick")
        if self.max_size_per_msg < 1 or self.max_entries_per_msg < 1:
            raise ConfigError("max_size_per_msg and max_entries_per_msg must be >= 1")
        if self.max_inflight_msgs < 1:
            raise ConfigError("max_inflight_msgs must be >= 1")
        if self.applied < 0 or self.max_proposal_bytes < 0:
            raise ConfigError("applied and max_proposal_bytes must be >= 0")
