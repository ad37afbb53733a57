"""The cluster half of the KV service: status, members, membership, leadership, snapshots."""

from __future__ import annotations

from typing import Any

from nexus_raft.errors import NotLeader
from nexus_raft.kv.limits import check_address, check_member_id, check_role
from nexus_raft.kv.service.base import ServiceBase
from nexus_raft.kv.service.status import member_to_pb, status_to_pb
from nexus_raft.kv.wire import kv_pb2

__all__ = ["ClusterRPCs"]


class ClusterRPCs(ServiceBase):
    """Status/Members/AddMember/RemoveMember/TransferLeader/Snapshot handlers."""

    async def Status(self, request: Any, context: Any) -> Any:
        """This member's view: role, term, leader, indexes, members."""

        async def work() -> Any:
            self._check_cluster(request.cluster_id)
            sm = self._node.state_machine
            revision = sm.revision() if sm is not None else 0
            return status_to_pb(self._node.status(), self._cluster_id, revision)

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
