"""A RaftNode's metrics, probes, gRPC health service and reflection, on real nodes in-process."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from nexus_raft.consensus.node.node import RaftNode
from tests.consensus.node.harness import Cluster, put, wait_until


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def fetch(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` from the node's metrics endpoint (any status)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def scrape(node: RaftNode, path: str = "/metrics") -> tuple[int, str]:
    port = node.metrics_port
    assert port is not None
    return await asyncio.get_running_loop().run_in_executor(None, fetch, port, path)


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample of a Prometheus text page."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def test_metrics_move_with_writes_and_probes_answer(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            for nid in c.peers:
                await c.start(nid, metrics_listen="127.0.0.1:0")
            leader = await c.leader()
            await c.wait_applied(leader.status().commit)
            before = samples((await scrape(leader))[1])
            for i in range(20):
                await leader.propose(put(f"k/{i}", b"v"))
            await c.wait_applied(leader.status().commit)
            for node in c.live():
                status, text = await scrape(node)
                assert status == 200
                got = samples(text)
                assert got["nexus_server_has_leader"] == 1
                assert got["nexus_server_is_leader"] == (1 if node is leader else 0)
                assert got["nexus_server_proposals_applied_total"] >= 20
                assert got["nexus_disk_wal_fsync_duration_seconds_count"] > 0
                assert got["nexus_disk_db_total_size_in_bytes"] > 0
                assert got["nexus_kv_revision"] >= 20
                assert got[f"nexus_server_id{{server_id={node.id}}}"] == 1
            after = samples((await scrape(leader))[1])
            key = "nexus_server_proposals_committed_total"
            assert after[key] >= before[key] + 20
            assert after["nexus_server_apply_duration_seconds_count"] > before.get(
                "nexus_server_apply_duration_seconds_count", 0
            )
            peer = next(n for n in c.peers if n != leader.id)
            assert after[f"nexus_network_peer_round_trip_time_seconds_count{{To={peer}}}"] > 0
            for path in ("/livez", "/readyz"):
                assert await scrape(leader, path) == (200, "ok\n")
            status, body = await scrape(leader, "/health")
            assert status == 200 and json.loads(body) == {"health": "true", "reason": ""}
            assert (await scrape(leader, "/nope"))[0] == 404
        finally:
            await c.close()

    run(scenario())


def test_grpc_health_serving_and_reflection_lists_services(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            await c.wait_applied(leader.status().commit)
            async with grpc.aio.insecure_channel(c.peers[leader.id]) as channel:
                stub = health_pb2_grpc.HealthStub(channel)

                async def serving() -> bool:
                    r = await stub.Check(health_pb2.HealthCheckRequest(service=""))
                    return bool(r.status == health_pb2.HealthCheckResponse.SERVING)

                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while not await serving():
                    assert loop.time() < deadline, "health never became SERVING"
                    await asyncio.sleep(0.05)
                kv = await stub.Check(health_pb2.HealthCheckRequest(service="nexus.kv.KV"))
                assert kv.status == health_pb2.HealthCheckResponse.SERVING
                refl = reflection_pb2_grpc.ServerReflectionStub(channel)
                request = reflection_pb2.ServerReflectionRequest(list_services="")
                names = set()
                async for answer in refl.ServerReflectionInfo(iter([request])):
                    names |= {s.name for s in answer.list_services_response.service}
                assert {"nexus.kv.KV", "nexus_raft.peer.RaftPeer", "grpc.health.v1.Health"} <= names
        finally:
            await c.close()

    run(scenario())


def test_readyz_refuses_without_a_leader(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            node = await c.start(1, metrics_listen="127.0.0.1:0")  # alone: no quorum
            assert await scrape(node, "/livez") == (200, "ok\n")
            status, body = await scrape(node, "/readyz")
            assert status == 503 and "no leader" in body
            status, body = await scrape(node, "/health")
            assert status == 503 and json.loads(body)["health"] == "false"
            await wait_until(lambda: node.status().term >= 0)
            text = (await scrape(node))[1]
            assert samples(text)["nexus_server_has_leader"] == 0
        finally:
            await c.close()

    run(scenario())


def test_a_restarted_member_is_not_ready_before_it_applied_the_commit_index_it_saw(
    tmp_path: Path,
) -> None:
    """/readyz (and gRPC health, ``nexus_server_ready``): a member restarted far
    behind is ready only once it applied the cluster's commit index as it saw
    it on rejoining (a read-index round through the leader), not its own
    commit index from disk. It used to report ready on the first heartbeat,
    while still hundreds of entries behind."""

    async def scenario() -> None:
        c = Cluster(tmp_path)
        try:
            await c.start_all()
            leader = await c.leader()
            follower = next(n.id for n in c.live() if n is not leader)
            await c.wait_applied(leader.status().commit)
            await c.stop(follower)
            for i in range(150):
                await leader.propose(put(f"big/{i}", b"v" * 65536))
            target = leader.status().commit
            node = await c.start(follower)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not (st := node.status()).ready:
                assert loop.time() < deadline, "the restarted member never became ready"
                await asyncio.sleep(0.001)
            assert st.applied >= target, (st.applied, target)
            assert st.startup_commit >= target
        finally:
            await c.close()

    run(scenario())
