"""The cluster half of the KV service: status, members, membership, leadership, snapshots."""

from __future__ import annotations

from typing import Any

from nexus_raft.errors import NexusRaftError, NotLeader
from nexus_raft.kv.limits import check_address, check_member_id, check_role
from nexus_raft.kv.service.base import ServiceBase, log_failure
from nexus_raft.kv.service.status import member_to_pb, status_to_pb
from nexus_raft.kv.wire import kv_pb2

__all__ = ["CONFIRM_SECONDS", "ClusterRPCs"]

CONFIRM_SECONDS = 1.0
"""Longest a Status(confirm_leader) waits for the named leader to confirm it leads."""


class ClusterRPCs(ServiceBase):
    """Status/Members/AddMember/RemoveMember/TransferLeader/Snapshot handlers."""

    async def Status(self, request: Any, context: Any) -> Any:
        """This member's view: role, term, leader, indexes, members.

        With ``confirm_leader`` the leader this member names must prove it
        still leads a quorum first (a ReadIndex round through it, at most
        ``CONFIRM_SECONDS``); if it cannot, the answer names no leader, so a
        dead or deposed leader is never reported as the leader.
        """
        budget = self._budget(context)

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            confirmed = False
            if request.confirm_leader and self._node.leader_id:
                try:
                    await self._node.read_index(timeout=min(budget, CONFIRM_SECONDS))
                    confirmed = True
                except NexusRaftError:
                    pass  # no leader answered: it is not confirmed
                except Exception as exc:
                    log_failure(exc)
            sm = self._node.state_machine
            revision = sm.revision() if sm is not None else 0
            resp = status_to_pb(self._node.status(), self._cluster_id, revision)
            if request.confirm_leader:
                if confirmed and resp.leader_id:
                    resp.leader_confirmed = True
                else:
                    resp.leader_id = 0
                    resp.leader_address = ""
            return resp

        return await self._answer(kv_pb2.StatusResponse, work, lambda r: r)

    async def Members(self, request: Any, context: Any) -> Any:
        """The membership as this member knows it."""

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            status = self._node.status()
            return kv_pb2.MembersResponse(
                leader_id=status.leader_id or 0,
                members=[member_to_pb(m) for m in status.members],
            )

        return await self._answer(kv_pb2.MembersResponse, work, lambda r: r)

    async def AddMember(self, request: Any, context: Any) -> Any:
        """Add a voter, learner or witness, or promote a learner (role ``voter``)."""

        async def work() -> None:
            self._check_cluster(request.cluster_id)
            node_id = check_member_id(request.id)
            address = check_address(request.address)
            role = check_role(request.role)
            await self._with_budget(
                self._node.add_member(node_id, address, role, forward=self._forward), context
            )

        return await self._answer(kv_pb2.AdminResponse, work, self._admin_ok)

    async def RemoveMember(self, request: Any, context: Any) -> Any:
        """Remove a member from the configuration."""

        async def work() -> None:
            self._check_cluster(request.cluster_id)
            node_id = check_member_id(request.id)
            await self._with_budget(
                self._node.remove_member(node_id, forward=self._forward), context
            )

        return await self._answer(kv_pb2.AdminResponse, work, self._admin_ok)

    async def TransferLeader(self, request: Any, context: Any) -> Any:
        """Hand leadership to the given voter."""

        async def work() -> None:
            self._check_cluster(request.cluster_id)
            node_id = check_member_id(request.id)
            await self._with_budget(
                self._node.transfer_leadership(node_id, forward=self._forward), context
            )

        return await self._answer(kv_pb2.AdminResponse, work, lambda _: kv_pb2.AdminResponse())

    def _admin_ok(self, _: object) -> Any:
        resp = kv_pb2.AdminResponse()
        self._leader_hint(resp.error)
        return resp

    async def Snapshot(self, request: Any, context: Any) -> Any:
        """Take a snapshot now and compact the log: on this member, or the leader (``leader``)."""

        async def work() -> int:
            self._check_cluster(request.cluster_id)
            if request.leader:
                if not self._forward and not self._node.is_leader:
                    raise NotLeader(
                        "not the leader",
                        leader_id=self._node.leader_id,
                        leader_address=self._node.leader_address,
                    )
                return await self._with_budget(self._node.snapshot(forward=True), context)
            return await self._with_budget(self._node.snapshot(), context)

        return await self._answer(
            kv_pb2.SnapshotResponse, work, lambda index: kv_pb2.SnapshotResponse(index=index)
        )
