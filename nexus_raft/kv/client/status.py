"""Finding the cluster's view for ``Client.status()``: ask everyone, trust only a confirmed leader.

A member's own answer may be stale: right after the leader dies, a
follower still names it until its election timeout, and a partitioned old
leader still believes it leads until check-quorum steps it down. So
``status()`` without an endpoint:

* asks every known member at once (``Status`` with ``confirm_leader``: each
  makes the leader it names prove it still leads a quorum, a ReadIndex
  round, before answering; an unconfirmed answer names no leader);
* returns the first answer of a member that is the confirmed leader (its
  view holds the match indexes), remembering it as the client's leader;
* otherwise returns a follower's answer whose leader was confirmed (the
  leader is alive but does not answer this client: a partition);
* otherwise asks again, with a short backoff (an election is under way),
  for at most ``LEADER_WAIT`` seconds, and then returns the most recent
  view it got with no leader named.

A member that does not answer within the attempt timeout is skipped: a dead
or silent member never holds the call for its whole deadline.

A client given no cluster id takes the one of the first member that answers
(:func:`pin_cluster`); an answer from a member of another cluster then fails
the call with ``ClusterMismatch`` naming both, instead of returning a view
of whichever cluster answered first (endpoints that span two clusters are a
misconfiguration to report, not to guess around).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc

from nexus_raft.errors import ClusterMismatch, NexusRaftError, Timeout, Unavailable
from nexus_raft.kv.client.router import Backoff, Router
from nexus_raft.kv.client.types import NodeInfo
from nexus_raft.kv.wire import OK, RETRYABLE_CODES, exception_from_error, kv_pb2

__all__ = ["LEADER_WAIT", "leader_status", "pin_cluster"]

LEADER_WAIT = 3.0
"""How long ``status()`` keeps asking while no member confirms a leader (elections end sooner)."""


def pin_cluster(router: Router, info: NodeInfo) -> None:
    """Adopt ``info``'s cluster id if the client has none; refuse another cluster's answer."""
    if not info.cluster_id:
        return  # a member that does not say (an old version): nothing to compare
    if not router.cluster_id:
        router.cluster_id = info.cluster_id
    elif info.cluster_id != router.cluster_id:
        raise ClusterMismatch(
            f"{info.endpoint} is a member of cluster {info.cluster_id}, but this client "
            f"talks to cluster {router.cluster_id}: the endpoints name members of two "
            "clusters (remove the other cluster's member, or give the cluster id)"
        )


def _rank(info: NodeInfo, confirmed: bool) -> tuple[int, int, int]:
    return (int(confirmed), info.term, info.commit)


async def _ask(
    router: Router, target: str, request: Any, timeout: float
) -> tuple[str, Any | grpc.aio.AioRpcError]:
    try:
        return target, await router.stub(target).Status(request, timeout=timeout)
    except grpc.aio.AioRpcError as err:
        return target, err


async def leader_status(
    router: Router, cluster_id: str, deadline: float, attempt_timeout: float
) -> NodeInfo:
    """The cluster's view as described in the module docstring."""
    loop = asyncio.get_running_loop()
    stop_waiting = min(deadline, loop.time() + LEADER_WAIT)
    backoff = Backoff(router.rng, 0.01, 0.1)
    best: tuple[tuple[int, int, int], NodeInfo] | None = None
    last: NexusRaftError | None = None
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        attempt = min(remaining, attempt_timeout)
        # The router's cluster id: given, or learned from an earlier answer.
        request = kv_pb2.StatusRequest(
            cluster_id=router.cluster_id or cluster_id, confirm_leader=True
        )
        asked = router.endpoints
        tasks = [asyncio.ensure_future(_ask(router, t, request, attempt)) for t in asked]
        found: NodeInfo | None = None
        try:
            for done in asyncio.as_completed(tasks):
                target, resp = await done
                if isinstance(resp, grpc.aio.AioRpcError):
                    router.mark_failed(target, unreachable=True)
                    last = Unavailable(f"{target} is unreachable ({router.failure(resp)})")
                    continue
                if resp.error.code != OK:
                    exc = exception_from_error(resp.error, where=target)
                    if resp.error.code not in RETRYABLE_CODES:
                        raise exc  # e.g. another cluster: final
                    last = exc
                    continue
                info = NodeInfo.from_pb(target, resp)
                pin_cluster(router, info)
                confirmed = bool(resp.leader_confirmed)
                if confirmed and info.leader_address:
                    router.learn(info.leader_address)
                if confirmed and info.is_leader:
                    found = info
                    break
                if best is None or _rank(info, confirmed) > best[0]:
                    best = (_rank(info, confirmed), info)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
        if found is not None:
            router.note_leader(found.endpoint)
            return found
        if best is not None and best[0][0]:
            named = best[1].leader_address
            if named and router.learn(named) not in asked:
                continue  # a leader we did not know about: ask it too, at once
            return best[1]  # the leader is alive (its follower says so) but not answering us
        if loop.time() >= stop_waiting:
            break
        await asyncio.sleep(max(0.0, min(backoff.delay(), deadline - loop.time())))
    if best is not None:
        return best[1]  # unconfirmed: names no leader (the member cleared it)
    if last is None:
        raise Timeout("status gave up at its deadline: no member answered")
    raise Unavailable(f"status gave up: no member answered; last failure: {last}")
