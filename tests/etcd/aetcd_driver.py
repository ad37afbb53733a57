"""Drive a cluster through ``aetcd`` (the PyPI etcd client); print what it saw as JSON.

Run as a program in its own process (``python aetcd_driver.py HOST:PORT``):
aetcd's generated etcd stubs and nexus_raft's register the same protobuf
names, so the two cannot be imported into one process. Imports nothing of
nexus_raft.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aetcd


async def drive(host: str, port: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aetcd.Client(host, port, timeout=15) as c:
        t = c.transactions
        watch = await c.watch(b"ae/", range_end=b"ae0")
        events: list[tuple[str, str, str]] = []

        async def collect() -> None:
            async for event in watch:
                events.append((event.kind, event.kv.key.decode(), event.kv.value.decode()))
                if len(events) == 4:
                    return

        collector = asyncio.ensure_future(collect())
        put = await c.put(b"ae/1", b"one", prev_kv=True)
        await c.put(b"ae/2", b"two")
        out["first_revision"] = put.header.revision
        out["get"] = (await c.get(b"ae/1")).value.decode()
        out["missing"] = await c.get(b"ae/none")
        out["prefix"] = [(kv.key.decode(), kv.value.decode()) async for kv in await_iter(
            await c.get_prefix(b"ae/"))]
        ok, responses = await c.transaction(
            compare=[t.value(b"ae/1") == b"one", t.version(b"ae/3") == 0],
            success=[t.put(b"ae/3", b"three"), t.get(b"ae/2")],
            failure=[t.put(b"ae/3", b"nope")],
        )
        out["txn"] = [ok, [v.decode() for v, _ in responses[1]]]
        ok, _ = await c.transaction(compare=[t.mod(b"ae/1") > 10**9], success=[],
                                    failure=[])
        out["txn_failed"] = ok
        out["delete"] = (await c.delete(b"ae/2")).deleted
        await asyncio.wait_for(collector, 20)
        await watch.cancel()
        out["events"] = events
        lease = await c.lease(30)
        await c.put(b"ae/leased", b"x", lease=lease.id)
        info = await lease.keys()
        out["lease_keys"] = [k.decode() for k in info]
        out["lease_granted"] = await lease.granted_ttl()
        out["lease_remaining_ok"] = 0 < await lease.remaining_ttl() <= 30
        refreshed = await lease.refresh()
        out["lease_refreshed_ttl"] = refreshed.TTL
        await lease.revoke()
        out["leased_after_revoke"] = await c.get(b"ae/leased")
        out["after_delete_prefix"] = (await c.delete_prefix(b"ae/")).deleted
        out["status_version"] = (await c.status()).version
        out["members"] = len([m async for m in c.members()])
    return out


async def await_iter(items: Any) -> Any:
    """Iterate a sync or async iterable asynchronously."""
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def main() -> None:
    host, _, port = sys.argv[1].rpartition(":")
    print(json.dumps(asyncio.run(drive(host, int(port)))))


if __name__ == "__main__":
    main()
