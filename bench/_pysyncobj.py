"""PySyncObj side of bench/cluster.py: three member processes and an asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

from _cluster_common import KVAdapter, Proc, free_ports, wait_port

_REQ = struct.Struct(">QcH")
_RESP = struct.Struct(">QB")
_LEN = struct.Struct(">I")
_NODE = Path(__file__).with_name("_pysyncobj_node.py")


class RpcError(Exception):
    """A PySyncObj member answered with a failure reason, or the connection broke."""


class _Conn:
    """One multiplexed connection to a member's RPC port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def open(cls, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @property
    def broken(self) -> bool:
        return self._task.done()

    async def _read_loop(self) -> None:
        try:
            while True:
                (size,) = _LEN.unpack(await self._reader.readexactly(4))
                frame = await self._reader.readexactly(size)
                req_id, status = _RESP.unpack_from(frame)
                fut = self._waiting.pop(req_id, None)
                if fut is None or fut.done():
                    continue
                payload = frame[_RESP.size :]
                if status == 0:
                    fut.set_result(payload)
                else:
                    fut.set_exception(RpcError(f"pysyncobj failure {payload.decode()}"))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(RpcError(f"connection lost: {exc!r}"))
            self._waiting.clear()

    async def call(self, op: bytes, key: bytes = b"", value: bytes = b"") -> bytes:
        if self.broken:
            raise RpcError("connection lost")
        req_id = next(self._ids)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = fut
        body = _REQ.pack(req_id, op, len(key)) + key + value
        self._writer.write(_LEN.pack(len(body)) + body)
        try:
            return await fut
        finally:
            self._waiting.pop(req_id, None)

    async def close(self) -> None:
        self._task.cancel()
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


class PySyncObjClient(KVAdapter):
    """Talks to the leader's RPC port; on a broken connection, finds the leader again."""

    def __init__(self, cluster: PySyncObjCluster) -> None:
        self._cluster = cluster
        self._conn: _Conn | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> _Conn:
        if self._conn is not None and not self._conn.broken:
            return self._conn
        async with self._lock:
            if self._conn is not None and not self._conn.broken:
                return self._conn
            member = await self._cluster.leader()
            self._conn = await _Conn.open(self._cluster.rpc_ports[member])
            return self._conn

    async def put(self, key: bytes, value: bytes) -> None:
        await (await self._connection()).call(b"P", key, value)

    async def get(self, key: bytes) -> bytes | None:
        out = await (await self._connection()).call(b"G", key)
        return out or None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class PySyncObjCluster:
    """Three ``_pysyncobj_node.py`` processes on loopback."""

    name = "PySyncObj 0.3"
    note = "in-memory log, no fsync; reads go through the log"
    # Its commits wait for a 100 ms tick, so it needs thousands in flight to peak.
    extra_concurrency: tuple[int, ...] = (1024, 4096)

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pysyncobj-"))
        ports = free_ports(6)
        self.raft_ports, self.rpc_ports = ports[:3], ports[3:]
        self.procs: list[Proc] = []
        for i in range(3):
            me = f"127.0.0.1:{self.raft_ports[i]}"
            others = ",".join(f"127.0.0.1:{p}" for j, p in enumerate(self.raft_ports) if j != i)
            argv = [sys.executable, str(_NODE), "--self", me, "--partners", others]
            argv += ["--rpc", str(self.rpc_ports[i])]
            self.procs.append(Proc(argv, self.dir / f"node{i}.log"))

    def start(self) -> None:
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + 20
        for port in self.rpc_ports:
            wait_port(port, deadline)
        asyncio.run(self._wait_leader(deadline))

    async def _wait_leader(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                await self.leader()
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("PySyncObj elected no leader")

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def connect(self) -> KVAdapter:
        return PySyncObjClient(self)

    async def leader(self) -> int:
        """Ask live members who leads; map its raft address to a member index."""
        for i, p in enumerate(self.procs):
            if not p.alive:
                continue
            conn = None
            try:
                conn = await _Conn.open(self.rpc_ports[i])
                addr = (await asyncio.wait_for(conn.call(b"L"), 1.0)).decode()
            except (OSError, RpcError, asyncio.TimeoutError):
                continue
            finally:
                if conn is not None:
                    await conn.close()
            if addr:
                port = int(addr.rsplit(":", 1)[1])
                if port in self.raft_ports and self.procs[self.raft_ports.index(port)].alive:
                    return self.raft_ports.index(port)
        raise RpcError("no member knows a live leader")

    def kill(self, member: int) -> None:
        self.procs[member].kill()

    def restart(self, member: int) -> None:
        self.procs[member].start()
        wait_port(self.rpc_ports[member], time.monotonic() + 10)

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs if p.popen is not None and p.alive]
