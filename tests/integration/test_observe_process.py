"""Monitoring real ``nexus-node`` processes: Prometheus metrics, probes, gRPC health, reflection."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.parser import text_string_to_metric_families

from .harness import ProcessCluster, wait_until

pytestmark = pytest.mark.process


def http_get(address: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(address: str) -> dict[str, float]:
    """Every sample of the member's /metrics, parsed by prometheus_client's parser."""
    status, text = http_get(address, "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def health_status(address: str, service: str = "") -> Any:
    """The member's health status for ``service``; None if it did not answer
    (a loaded machine can miss the 5 s deadline: callers poll)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        except grpc.RpcError:
            return None


def test_metrics_scraped_while_writes_run(make_cluster: Callable[..., ProcessCluster]) -> None:
    cluster = make_cluster(3, metrics=True)
    leader = cluster.wait_for_leader()
    client = cluster.client()
    client.put("warmup", b"x")
    metrics = {i: m.metrics_address for i, m in cluster.members.items()}
    assert all(metrics.values())
    before = {i: scrape(a) for i, a in metrics.items() if a}
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set() and written[0] < 2000:
            client.put(f"load/{written[0] % 50}", b"v" * 64)
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until("writes to run", lambda: written[0] >= 50, 30)
        during = {i: scrape(a) for i, a in metrics.items() if a}
    finally:
        stop.set()
        thread.join(30)
    for i, got in during.items():
        assert got["nexus_server_has_leader"] == 1, i
        assert got["nexus_server_is_leader"] == (1 if i == leader else 0)
        for counter in ("nexus_server_proposals_committed_total",
                        "nexus_server_proposals_applied_total",
                        "nexus_disk_wal_fsync_duration_seconds_count"):  # fmt: skip
            assert got[counter] > before[i][counter], (i, counter)
        assert got["nexus_kv_revision"] > before[i]["nexus_kv_revision"]
        assert got["nexus_disk_db_total_size_in_bytes"] > 0
        assert got["nexus_server_ready"] == 1
    # Every metric issue #12 names, under etcd's names (prometheus_client adds
    # the `_total` of counters): a member that stops exporting one fails here.
    for i, got in during.items():
        for name in ("nexus_server_leader_changes_seen_total", "nexus_server_proposals_pending",
                     "nexus_server_proposals_failed_total",
                     "nexus_server_read_indexes_failed_total",
                     "nexus_server_apply_duration_seconds_count",
                     "nexus_network_snapshot_receive_success_total",
                     "nexus_network_snapshot_receive_failures_total"):  # fmt: skip
            assert name in got, (i, name)
        assert got["nexus_server_apply_duration_seconds_count"] > 0, i
    on_leader = during[leader]
    peers = [i for i in metrics if i != leader]
    for peer in peers:
        assert on_leader[f"nexus_network_peer_round_trip_time_seconds_count{{To={peer}}}"] > 0
        assert on_leader[f"nexus_network_peer_last_contact_seconds{{To={peer}}}"] < 5
        for name in ("nexus_network_peer_sent_failures_total",
                     "nexus_network_snapshot_send_success_total",
                     "nexus_network_snapshot_send_failures_total"):  # fmt: skip
            assert f"{name}{{To={peer}}}" in on_leader, (peer, name)
    for address in metrics.values():
        assert address is not None
        assert http_get(address, "/readyz") == (200, "ok\n")
        assert http_get(address, "/livez") == (200, "ok\n")
        assert http_get(address, "/health")[0] == 200


def test_grpc_health_is_serving_on_every_member(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = make_cluster(3)
    cluster.client().put("k", b"v")
    serving = health_pb2.HealthCheckResponse.SERVING
    for member in cluster.members.values():
        # Polled, both: a check round sets the overall status, then each
        # service's, and a leader that briefly misses a follower (a loaded
        # machine) answers NOT_SERVING for a round.
        wait_until(
            f"member {member.id} SERVING, and its KV service too",
            lambda m=member: health_status(m.address) == serving
            and health_status(m.address, "nexus.kv.KV") == serving,
            30,
        )
    # A member that lost its quorum stops serving (after the grace period).
    survivor = cluster.members[1]
    for i in (2, 3):
        cluster.members[i].kill()
    wait_until(
        "the lone member to answer NOT_SERVING",
        lambda: health_status(survivor.address) == health_pb2.HealthCheckResponse.NOT_SERVING,
        30,
    )
    wait_until("a quorum-lost warning", lambda: "quorum lost" in survivor.log_tail(200), 30)


def test_a_witness_serves_metrics_and_grpc_health(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    """``nexus-witness --metrics-listen``: a witness is monitored like a full member."""
    cluster = make_cluster(3, witnesses=[3], metrics=True, start=False)
    cluster.members[3].module = "nexus_raft.cli.witness"
    cluster.start()
    leader = cluster.wait_for_leader(among=[1, 2])
    cluster.client().put("k", b"v")
    witness = cluster.members[3]
    assert witness.metrics_address is not None

    def scraped() -> dict[str, float] | None:
        got = scrape(witness.metrics_address or "")
        return got if got.get("nexus_server_has_leader") == 1 else None

    got = wait_until("the witness to report a leader", scraped, 30)
    assert got["nexus_server_is_witness"] == 1
    assert http_get(witness.metrics_address, "/livez") == (200, "ok\n")
    on_leader = scrape(cluster.members[leader].metrics_address or "")
    assert on_leader["nexus_witness_payload_mode{witness=3}"] in (0, 1)
    serving = health_pb2.HealthCheckResponse.SERVING
    wait_until("the witness SERVING", lambda: health_status(witness.address) == serving, 30)


def test_server_reflection_describes_every_service_of_a_real_node(
    make_cluster: Callable[..., ProcessCluster],
) -> None:
    """What ``grpcurl -plaintext HOST:PORT list|describe|call`` does, against a
    real ``nexus-node``: every listed service can be described, and a call built
    from the reflected descriptors alone works. The etcd services used to be
    listed but not describable (their messages live in a private descriptor
    pool that reflection did not read)."""
    cluster = make_cluster(1)
    cluster.client().put("refl", b"v")
    address = cluster.members[1].address
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"nexus.kv.KV", "nexus_raft.peer.RaftPeer", "grpc.health.v1.Health",
                "etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Cluster",
                "etcdserverpb.Maintenance"} <= services  # fmt: skip
        pool = descriptor_pool.DescriptorPool(database)
        for name in services:
            assert pool.FindServiceByName(name).methods, name
        # etcdserverpb.KV/Range, built from reflection only (no generated code).
        rng = pool.FindServiceByName("etcdserverpb.KV").methods_by_name["Range"]
        request_class = message_factory.GetMessageClass(rng.input_type)
        response_class = message_factory.GetMessageClass(rng.output_type)
        call = channel.unary_unary(
            "/etcdserverpb.KV/Range",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        answer = call(request_class(key=b"refl"), timeout=10)
        assert [(kv.key, kv.value) for kv in answer.kvs] == [(b"refl", b"v")]
