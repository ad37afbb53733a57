"""A RaftNode's metrics as Prometheus metric families (``prometheus_client`` collector).

Names follow etcd's where the meaning is the same, under the ``nexus_``
prefix (``etcd_server_has_leader`` -> ``nexus_server_has_leader``, ...).
Everything is computed when scraped, from :class:`~.metrics.NodeMetrics` and
the node's status: nothing here runs on the hot path.

=============================================== ========= =========================================
name                                            type      meaning
=============================================== ========= =========================================
nexus_server_has_leader                         gauge     1 if a leader is known
nexus_server_is_leader                          gauge     1 if this member leads
nexus_server_is_learner / _is_witness           gauge     1 for a learner / a witness
nexus_server_ready                              gauge     1 when /readyz would answer 200
nexus_server_id{server_id}                      gauge     always 1; the label is the member id
nexus_server_version{server_version}            gauge     always 1; the label is the version
nexus_server_term                               gauge     current Raft term
nexus_server_leader_changes_seen_total          counter   leader changes seen by this member
nexus_server_proposals_committed_total          counter   the commit index (entries committed)
nexus_server_proposals_applied_total            counter   the applied index
nexus_server_proposals_pending                  gauge     proposals waiting for their result
nexus_server_proposals_failed_total             counter   proposals that ended in an error
nexus_server_read_indexes_failed_total          counter   linearizable read points refused/lost
nexus_server_apply_duration_seconds             histogram one state-machine apply batch
nexus_disk_wal_fsync_duration_seconds           histogram one log save (its fsync)
nexus_disk_wal_slow_fsyncs_total                counter   saves slower than 100 ms
nexus_disk_db_total_size_in_bytes               gauge     bytes of the data directory
nexus_network_peer_round_trip_time_seconds{To}  histogram sampled stream round trips
nexus_network_peer_sent_failures_total{To}      counter   failed sends / unreachable reports
nexus_network_peer_last_contact_seconds{To}     gauge     seconds since the peer last answered
nexus_network_snapshot_send_success_total{To}   counter   snapshots sent and installed
nexus_network_snapshot_send_failures_total{To}  counter   snapshot sends that failed
nexus_network_snapshot_receive_success_total    counter   snapshots received and installed
nexus_network_snapshot_receive_failures_total   counter   snapshots received and refused/broken
nexus_witness_payload_mode{witness}             gauge     leader: 1 while it sends payloads to it
=============================================== ========= =========================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from nexus_raft.consensus.node.metrics import Histogram, NodeMetrics
from nexus_raft.consensus.node.status import NodeStatus
from nexus_raft.errors import NexusRaftError

__all__ = ["NodeCollector", "Observed"]


class Observed(Protocol):
    """What the collector reads of a node (``RaftNode`` provides it)."""

    @property
    def metrics(self) -> NodeMetrics: ...

    @property
    def proposals_pending(self) -> int: ...

    @property
    def proposals_failed(self) -> int: ...

    def status(self) -> NodeStatus: ...


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(
    name: str, doc: str, items: Iterable[tuple[list[str], Histogram]], labels: list[str]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in items:
        family.add_metric(values, hist.cumulative(), hist.sum)
    return family


class NodeCollector(Collector):
    """Builds the node's metric families at scrape time (see the module table)."""

    def __init__(self, node: Observed, prefix: str = "nexus") -> None:
        self._node = node
        self._p = prefix

    def collect(self) -> Iterator[Metric]:
        p, node = self._p, self._node
        m = node.metrics
        try:
            st: NodeStatus | None = node.status()
        except NexusRaftError:
            st = None  # stopped or failed: report what does not need the core
        if st is not None:
            yield from self._status_families(st)
        yield _counter(
            f"{p}_server_leader_changes_seen_total",
            "Leader changes seen by this member.",
            m.leader_changes,
        )
        yield _gauge(
            f"{p}_server_proposals_pending", "Proposals waiting for their result.",
            node.proposals_pending,
        )  # fmt: skip
        yield _counter(
            f"{p}_server_proposals_failed_total",
            "Proposals that ended in an error (dropped, refused, timed out).",
            node.proposals_failed,
        )
        yield _counter(
            f"{p}_server_read_indexes_failed_total",
            "Linearizable read points that could not be confirmed.",
            m.read_index_failures,
        )
        yield _histogram(
            f"{p}_server_apply_duration_seconds",
            "Time to apply one batch of committed entries to the state machine.",
            [([], m.apply)],
            [],
        )
        yield _histogram(
            f"{p}_disk_wal_fsync_duration_seconds",
            "Time to save (and fsync) one batch of log entries and hard state.",
            [([], m.fsync)],
            [],
        )
        yield _counter(
            f"{p}_disk_wal_slow_fsyncs_total", "Log saves slower than 100 ms.", m.slow_fsyncs
        )
        yield from self._peer_families()
        yield _counter(
            f"{p}_network_snapshot_receive_success_total",
            "Snapshots received and installed.",
            m.snapshots_received,
        )
        yield _counter(
            f"{p}_network_snapshot_receive_failures_total",
            "Snapshots received but refused or damaged.",
            m.snapshot_receive_failures,
        )

    def _status_families(self, st: NodeStatus) -> Iterator[Metric]:
        p = self._p
        me = next((x for x in st.members if x.id == st.id), None)
        kind = me.kind if me is not None else ""
        yield _gauge(f"{p}_server_has_leader", "1 if a leader is known.", int(st.has_leader))
        yield _gauge(f"{p}_server_is_leader", "1 if this member is the leader.",
                     int(st.leader_id == st.id))  # fmt: skip
        yield _gauge(f"{p}_server_is_learner", "1 if this member is a learner.",
                     int(kind == "learner"))  # fmt: skip
        yield _gauge(f"{p}_server_is_witness", "1 if this member is a witness.", int(st.witness))
        yield _gauge(f"{p}_server_ready", "1 when the member is ready to serve.", int(st.ready))
        ident = GaugeMetricFamily(f"{p}_server_id", "This member's id.", labels=["server_id"])
        ident.add_metric([str(st.id)], 1)
        yield ident
        version = GaugeMetricFamily(
            f"{p}_server_version", "Which version is running.", labels=["server_version"]
        )
        version.add_metric([st.version or "unknown"], 1)
        yield version
        yield _gauge(f"{p}_server_term", "The current Raft term.", st.term)
        yield _counter(
            f"{p}_server_proposals_committed_total", "Entries committed (the commit index).",
            st.commit,
        )  # fmt: skip
        yield _counter(
            f"{p}_server_proposals_applied_total", "Entries applied (the applied index).",
            st.applied,
        )  # fmt: skip
        yield _gauge(
            f"{p}_disk_db_total_size_in_bytes", "Bytes of the data directory on disk.", st.db_size
        )
        modes = GaugeMetricFamily(
            f"{p}_witness_payload_mode",
            "Leader only: 1 while the witness is sent payloads (a full member lags).",
            labels=["witness"],
        )
        if st.leader_id == st.id:
            for member in st.members:
                if member.kind == "witness":
                    modes.add_metric([str(member.id)], int(member.payload_mode))
        yield modes

    def _peer_families(self) -> Iterator[Metric]:
        p = self._p
        peers = sorted(self._node.metrics.peers.items())
        labels = ["To"]
        yield _histogram(
            f"{p}_network_peer_round_trip_time_seconds",
            "Round trip of sampled stream messages to each peer.",
            [([str(nid)], s.rtt) for nid, s in peers],
            labels,
        )
        failures = CounterMetricFamily(
            f"{p}_network_peer_sent_failures_total",
            "Sends to each peer that failed (unreachable reports).",
            labels=labels,
        )
        contact = GaugeMetricFamily(
            f"{p}_network_peer_last_contact_seconds",
            "Seconds since each peer last answered this member.",
            labels=labels,
        )
        sent = CounterMetricFamily(
            f"{p}_network_snapshot_send_success_total",
            "Snapshots sent to each peer and installed.",
            labels=labels,
        )
        sent_failed = CounterMetricFamily(
            f"{p}_network_snapshot_send_failures_total",
            "Snapshot sends to each peer that failed.",
            labels=labels,
        )
        now = time.monotonic()
        for nid, s in peers:
            failures.add_metric([str(nid)], s.send_failures)
            if s.last_contact:
                contact.add_metric([str(nid)], now - s.last_contact)
            sent.add_metric([str(nid)], s.snapshots_sent)
            sent_failed.add_metric([str(nid)], s.snapshot_send_failures)
        yield failures
        yield contact
        yield sent
        yield sent_failed
