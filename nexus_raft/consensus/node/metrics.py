"""What a RaftNode measures about itself, kept as plain numbers on the hot path.

Every counter here is a plain ``int`` attribute and every histogram a
:class:`Histogram` (a list of bucket counts): updating one costs a few
attribute operations, no lock and no allocation. All updates run on the
node's event loop thread (the driver, the apply task, the peer senders and
the peer handler all live there), so no two updates race. The values become
Prometheus metric families only when someone scrapes them
(:mod:`~nexus_raft.consensus.node.metrics_export`).

Invariants: counters only grow; ``Histogram.counts[i]`` counts the
observations ``v`` with ``bounds[i-1] < v <= bounds[i]`` (the last slot: above
every bound), so the cumulative sums are Prometheus's ``le`` buckets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = [
    "APPLY_BUCKETS",
    "FSYNC_BUCKETS",
    "RTT_BUCKETS",
    "Histogram",
    "NodeMetrics",
    "PeerStats",
]


def _exponential(start: float, factor: float, count: int) -> tuple[float, ...]:
    return tuple(start * factor**i for i in range(count))


FSYNC_BUCKETS = _exponential(0.001, 2.0, 14)
"""etcd's ``disk_wal_fsync_duration_seconds`` buckets: 1 ms .. 8.192 s."""

APPLY_BUCKETS = _exponential(0.0001, 2.0, 16)
"""Apply-duration buckets: 100 us .. 3.3 s."""

RTT_BUCKETS = _exponential(0.0001, 2.0, 16)
"""etcd's ``peer_round_trip_time_seconds`` buckets: 100 us .. 3.3 s."""


class Histogram:
    """Fixed buckets, no lock (updated on one thread); see the module invariants."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("histogram bounds must be strictly increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` (seconds)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count of observations <= le)`` pairs, ending with ``+Inf``."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


class PeerStats:
    """What this node saw of one peer.

    ``last_contact`` is the ``time.monotonic()`` of the last answer from the peer
    (0.0: never); ``rtt`` samples the round trip of one stream message at a
    time (at most one sample in flight, so sampling costs nothing per message).
    """

    __slots__ = (
        "last_contact",
        "rtt",
        "send_failures",
        "snapshot_send_failures",
        "snapshots_sent",
        "unreachable_warned",
    )

    def __init__(self) -> None:
        self.rtt = Histogram(RTT_BUCKETS)
        self.send_failures = 0
        self.last_contact = 0.0
        self.snapshots_sent = 0
        self.snapshot_send_failures = 0
        self.unreachable_warned = False


class NodeMetrics:
    """The counters and histograms of one RaftNode (see the module docstring).

    ``leader_contact``: ``time.monotonic()`` of the last request received from
    the leader (a follower's view of "last contact"); ``leader_since``: when
    this node last became leader. ``proposals_failed`` is
    kept by the node's ``Proposals`` table and read from there.
    """

    def __init__(self) -> None:
        self.leader_changes = 0
        self.fsync = Histogram(FSYNC_BUCKETS)
        self.slow_fsyncs = 0
        self.apply = Histogram(APPLY_BUCKETS)
        self.read_index_failures = 0
        self.snapshots_received = 0
        self.snapshot_receive_failures = 0
        self.leader_contact = 0.0
        self.leader_since = 0.0
        self.peers: dict[int, PeerStats] = {}

    def peer(self, node_id: int) -> PeerStats:
        """The stats of ``node_id`` (created on first use)."""
        stats = self.peers.get(node_id)
        if stats is None:
            stats = self.peers[node_id] = PeerStats()
        return stats
