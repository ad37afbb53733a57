"""etcd side of bench/cluster.py: Debian's etcd 3.4, three members, a grpc.aio client.

The client speaks etcd's v3 gRPC API (``etcdserverpb.KV/Put``, ``KV/Range``,
``Maintenance/Status``) with the same ``grpc.aio`` stack nexus_raft's client
uses, so neither side is favoured by its client library. The few messages it
needs are declared here at run time from their field numbers in etcd's
rpc.proto (no generated code, no second protobuf runtime): etcd's Python
package ``etcd3`` needs protobuf<4 and would have to live in its own venv.

Reads are etcd's default linearizable Range (``serializable=false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from _cluster_common import KVAdapter, Proc, free_ports, wait_port
from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

ETCD = Path("/usr/bin/etcd")
_POLICY = Path("/usr/sbin/policy-rc.d")

_F = descriptor_pb2.FieldDescriptorProto
_FIELDS: dict[str, list[tuple[str, int, int, str]]] = {
    # name, number, type, type_name (for messages)
    "ResponseHeader": [
        ("cluster_id", 1, _F.TYPE_UINT64, ""),
        ("member_id", 2, _F.TYPE_UINT64, ""),
        ("revision", 3, _F.TYPE_INT64, ""),
        ("raft_term", 4, _F.TYPE_UINT64, ""),
    ],
    "KeyValue": [
        ("key", 1, _F.TYPE_BYTES, ""),
        ("create_revision", 2, _F.TYPE_INT64, ""),
        ("mod_revision", 3, _F.TYPE_INT64, ""),
        ("version", 4, _F.TYPE_INT64, ""),
        ("value", 5, _F.TYPE_BYTES, ""),
        ("lease", 6, _F.TYPE_INT64, ""),
    ],
    "PutRequest": [("key", 1, _F.TYPE_BYTES, ""), ("value", 2, _F.TYPE_BYTES, "")],
    "PutResponse": [("header", 1, _F.TYPE_MESSAGE, "ResponseHeader")],
    "RangeRequest": [
        ("key", 1, _F.TYPE_BYTES, ""),
        ("range_end", 2, _F.TYPE_BYTES, ""),
        ("limit", 3, _F.TYPE_INT64, ""),
        ("serializable", 7, _F.TYPE_BOOL, ""),
    ],
    "RangeResponse": [
        ("header", 1, _F.TYPE_MESSAGE, "ResponseHeader"),
        ("kvs", 2, _F.TYPE_MESSAGE, "KeyValue"),
        ("count", 4, _F.TYPE_INT64, ""),
    ],
    "StatusRequest": [],
    "StatusResponse": [
        ("header", 1, _F.TYPE_MESSAGE, "ResponseHeader"),
        ("version", 2, _F.TYPE_STRING, ""),
        ("db_size", 3, _F.TYPE_INT64, ""),
        ("leader", 4, _F.TYPE_UINT64, ""),
        ("raft_index", 5, _F.TYPE_UINT64, ""),
        ("raft_term", 6, _F.TYPE_UINT64, ""),
    ],
}


def _messages() -> dict[str, Any]:
    """Build the message classes from :data:`_FIELDS` in a private descriptor pool."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bench_etcd_rpc.proto", package="etcdserverpb", syntax="proto3"
    )
    for msg_name, fields in _FIELDS.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, ftype, type_name in fields:
            label = _F.LABEL_REPEATED if name == "kvs" else _F.LABEL_OPTIONAL
            f = msg.field.add(name=name, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".etcdserverpb.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"etcdserverpb.{n}"))
        for n in _FIELDS
    }


_MSG = _messages()


def ensure_installed() -> str | None:
    """Install Debian's etcd-server if /usr/bin/etcd is missing.

    Returns None when etcd is usable, else a one-line reason to print. A
    temporary policy-rc.d keeps the package from starting a system etcd.
    """
    if ETCD.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "etcd not installed and cannot apt-get install etcd-server (not root / no apt)"
    created = False
    try:
        if not _POLICY.exists():
            _POLICY.write_text("#!/bin/sh\nexit 101\n")
            _POLICY.chmod(_POLICY.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            created = True
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "etcd-server", "etcd-client"],
        ):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                return f"`{' '.join(argv)}` failed: {last}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"installing etcd-server failed: {exc}"
    finally:
        if created:
            _POLICY.unlink(missing_ok=True)
    return None if ETCD.exists() else "etcd-server installed but /usr/bin/etcd is missing"


def etcd_version() -> str:
    """``etcd --version`` first line, e.g. 'etcd Version: 3.4.23'."""
    out = subprocess.run([str(ETCD), "--version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["etcd"])[0]


class EtcdClient(KVAdapter):
    """One grpc.aio channel per member; requests go to the member believed to lead."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self._cluster = cluster
        self._channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in cluster.client_ports]
        self._put = [
            ch.unary_unary(
                "/etcdserverpb.KV/Put",
                request_serializer=_MSG["PutRequest"].SerializeToString,
                response_deserializer=_MSG["PutResponse"].FromString,
            )
            for ch in self._channels
        ]
        self._range = [
            ch.unary_unary(
                "/etcdserverpb.KV/Range",
                request_serializer=_MSG["RangeRequest"].SerializeToString,
                response_deserializer=_MSG["RangeResponse"].FromString,
            )
            for ch in self._channels
        ]
        self._target = 0
        self._finding: asyncio.Task[None] | None = None

    async def _refind(self) -> None:
        with contextlib.suppress(Exception):
            self._target = await self._cluster.leader()

    async def _failed(self) -> None:
        # Many workers fail at once after a kill: look for the leader once.
        if self._finding is None or self._finding.done():
            self._finding = asyncio.create_task(self._refind())
        await asyncio.shield(self._finding)

    async def put(self, key: bytes, value: bytes) -> None:
        i = self._target
        try:
            await self._put[i](_MSG["PutRequest"](key=key, value=value), timeout=5)
        except grpc.aio.AioRpcError:
            await self._failed()
            raise

    async def get(self, key: bytes) -> bytes | None:
        i = self._target
        try:
            resp = await self._range[i](_MSG["RangeRequest"](key=key), timeout=5)
        except grpc.aio.AioRpcError:
            await self._failed()
            raise
        return resp.kvs[0].value if resp.kvs else None

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()


class EtcdCluster:
    """Three etcd members on loopback, default timings (100 ms heartbeat, 1 s election)."""

    note = "fsync per write (bbolt + WAL), default timings"
    extra_concurrency: tuple[int, ...] = (1024,)

    def __init__(self) -> None:
        self.name = etcd_version().replace("etcd Version: ", "etcd ")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-etcd-"))
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        initial = ",".join(f"m{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        self.procs: list[Proc] = []
        self._member_ids: dict[int, int] = {}
        for i in range(3):
            client = f"http://127.0.0.1:{self.client_ports[i]}"
            peer = f"http://127.0.0.1:{self.peer_ports[i]}"
            argv = [
                str(ETCD),
                f"--name=m{i}",
                f"--data-dir={self.dir / f'm{i}'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                "--initial-cluster-token=bench",
                "--log-level=error",
            ]
            self.procs.append(Proc(argv, self.dir / f"m{i}.log"))

    def start(self) -> None:
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + 30
        for port in self.client_ports:
            wait_port(port, deadline)
        asyncio.run(self._wait_ready(deadline))

    async def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                await self.leader()
                client = EtcdClient(self)
                try:
                    await client.put(b"ready", b"1")
                finally:
                    await client.close()
                return
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.1)
        raise TimeoutError(f"etcd did not become ready: {last!r}\n{self.procs[0].tail()}")

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def connect(self) -> KVAdapter:
        client = EtcdClient(self)
        with contextlib.suppress(Exception):
            client._target = await self.leader()
        return client

    async def _status(self, i: int) -> Any:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.client_ports[i]}") as ch:
            call = ch.unary_unary(
                "/etcdserverpb.Maintenance/Status",
                request_serializer=_MSG["StatusRequest"].SerializeToString,
                response_deserializer=_MSG["StatusResponse"].FromString,
            )
            return await call(_MSG["StatusRequest"](), timeout=1)

    async def leader(self) -> int:
        """Member index of the leader, from live members' Status (member ids are learned lazily)."""
        leader_id = 0
        for i, p in enumerate(self.procs):
            if not p.alive:
                continue
            try:
                st = await self._status(i)
            except grpc.aio.AioRpcError:
                continue
            self._member_ids[st.header.member_id] = i
            if st.leader:
                leader_id = st.leader
        if leader_id in self._member_ids and self.procs[self._member_ids[leader_id]].alive:
            return self._member_ids[leader_id]
        raise RuntimeError("etcd: no live leader known")

    def kill(self, member: int) -> None:
        self.procs[member].kill()

    def restart(self, member: int) -> None:
        self.procs[member].start()
        wait_port(self.client_ports[member], time.monotonic() + 20)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs if p.popen is not None and p.alive]
