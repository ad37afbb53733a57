"""Prometheus metrics of the KV state machine (registered on its node's ``/metrics``).

=================================== ===== ===============================================
name                                type  meaning
=================================== ===== ===============================================
nexus_kv_revision                   gauge revision of the latest change
nexus_kv_sessions                   gauge client sessions remembered (exactly-once)
nexus_kv_watchers                   gauge watch streams open on this member
nexus_kv_history_events             gauge change events retained for watches
nexus_kv_history_bytes              gauge bytes of those events' keys and values
nexus_kv_history_floor_revision     gauge oldest revision a watch may start from
=================================== ===== ===============================================

Read at scrape time from :meth:`KVStateMachine.stats`; nothing on the apply path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["KVCollector"]

_FAMILIES = (
    ("revision", "nexus_kv_revision", "Revision of the latest change."),
    ("sessions", "nexus_kv_sessions", "Client sessions remembered for exactly-once writes."),
    ("watchers", "nexus_kv_watchers", "Watch streams open on this member."),
    ("history_events", "nexus_kv_history_events", "Change events retained for watches."),
    ("history_bytes", "nexus_kv_history_bytes", "Bytes of the retained events."),
    ("history_floor", "nexus_kv_history_floor_revision", "Oldest revision a watch can start at."),
)


class _Stats(Protocol):
    def stats(self) -> dict[str, int]: ...


class KVCollector(Collector):
    """Gauges from a KV state machine's ``stats()``."""

    def __init__(self, sm: _Stats) -> None:
        self._sm = sm

    def collect(self) -> Iterator[Metric]:
        stats = self._sm.stats()
        for key, name, doc in _FAMILIES:
            yield GaugeMetricFamily(name, doc, value=stats.get(key, 0))
