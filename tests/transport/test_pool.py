"""RaftClientPool: one client per node id, replaced when the address changes."""

from __future__ import annotations

import asyncio

import pytest

from nexus_raft.transport import ClientClosed, NodeAddress, RaftClientPool

from .helpers import serving


def test_pool_reuses_and_replaces_on_address_change() -> None:
    async def main() -> None:
        async with serving() as (a, _), serving() as (b, handler_b):
            async with RaftClientPool() as pool:
                first = await pool.get(NodeAddress(2, a.endpoint))
                again = await pool.get(NodeAddress(2, f"http://{a.endpoint}"))
                assert again is first  # same destination, same client and channel
                assert (await first.request_vote(1, 1, 0, 0)).term == 1
                other = await pool.get(NodeAddress(3, a.endpoint))
                assert other is not first and pool.node_ids() == [2, 3]

                moved = await pool.get(NodeAddress(2, b.endpoint))
                assert moved is not first
                assert first.closed  # the old channel is closed
                with pytest.raises(ClientClosed):
                    await first.request_vote(2, 1, 0, 0)
                assert (await moved.request_vote(3, 1, 0, 0)).term == 3
                assert [v.term for v in handler_b.votes] == [3]

                assert await pool.remove(3) is True
                assert other.closed and 3 not in pool
                assert await pool.remove(3) is False
            assert pool.closed and moved.closed and len(pool) == 0
            with pytest.raises(ClientClosed):
                await pool.get(NodeAddress(2, a.endpoint))
            await pool.close()  # idempotent

    asyncio.run(main())


def test_concurrent_gets_share_one_client() -> None:
    async def main() -> None:
        async with serving() as (a, _), RaftClientPool() as pool:
            address = NodeAddress(2, a.endpoint)
            clients = await asyncio.gather(*(pool.get(address) for _ in range(20)))
            assert len({id(c) for c in clients}) == 1

    asyncio.run(main())


def test_pool_type_errors() -> None:
    async def main() -> None:
        async with RaftClientPool() as pool:
            with pytest.raises(TypeError, match="address"):
                await pool.get("127.0.0.1:7001")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="node_id"):
                await pool.remove("2")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cluster_id"):
            RaftClientPool(cluster_id=5)  # type: ignore[arg-type]

    asyncio.run(main())
