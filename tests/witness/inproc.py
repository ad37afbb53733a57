"""Helpers for in-process witness tests: real stores, real gRPC on 127.0.0.1, one event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

FAST: dict[str, Any] = {"tick_interval": 0.01, "election_ticks": 10, "heartbeat_ticks": 2}


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def peers_of(n: int) -> dict[int, str]:
    """Members 1..n on fresh loopback ports."""
    return {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(n))}


async def wait_until(pred: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``pred`` every 10 ms until it is truthy; AssertionError at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.01)


class KVProbe:
    """Raw ``nexus.kv.KV`` calls to one address (no client-side leader following)."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self.stub = kv_pb2_grpc.KVStub(self._channel)

    async def get(self, key: bytes, *, serializable: bool = False) -> Any:
        return await self.stub.Get(kv_pb2.GetRequest(key=key, serializable=serializable),
                                   timeout=5)

    async def put(self, key: bytes, value: bytes) -> Any:
        return await self.stub.Put(kv_pb2.PutRequest(key=key, value=value, client_id=7, seq=1),
                                   timeout=5)

    async def status(self) -> Any:
        return await self.stub.Status(kv_pb2.StatusRequest(), timeout=5)

    async def close(self) -> None:
        await self._channel.close()


def scratch(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
