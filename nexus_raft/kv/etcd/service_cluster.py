"""``etcdserverpb.Cluster``, ``Maintenance`` and ``Auth`` on a nexus member.

Members: etcd's ``Member`` from the node's view of the configuration: the
peer URL from the address book, the name and client URLs from what each
member published about itself through the log (member attributes, as etcd
members publish theirs); a member that has not published yet has neither,
which etcdctl shows as ``unstarted``, as for etcd. Witnesses hold no data
and serve no data requests, so they are listed with no client URLs and a
name ending in ``-witness``. ``MemberAdd`` picks the next free id. Maintenance: ``Status``
from the node's status, ``Alarm`` always empty, ``Defragment`` a no-op
(LevelDB compacts on its own), ``Snapshot`` the KV state machine's snapshot
stream padded to 512 bytes and followed by its SHA-256 (what ``etcdctl
snapshot save`` checks), ``MoveLeader`` a leadership transfer. Auth is not
supported: it answers that authentication is not enabled.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nexus_raft.kv.etcd.base import EtcdBase
from nexus_raft.kv.etcd.errors import EtcdError
from nexus_raft.transport._generated.etcd import rpc_pb2, rpc_pb2_grpc

__all__ = ["AuthServicer", "ClusterServicer", "MaintenanceServicer", "VERSION"]

VERSION = "3.4.23"
"""The etcd API version served (etcd 3.4.23's protocol, plus what etcdctl 3.5 sends)."""

_CHUNK = 1 << 20


def _url(address: str) -> str:
    return address if "://" in address else f"http://{address}"


def _address(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname or not parts.port or parts.path not in ("", "/"):
        raise EtcdError("member_bad_urls")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port}"


def member_pb(m: Any) -> Any:
    """One ``MemberStatus`` as an etcd ``Member``."""
    witness = m.kind == "witness"
    name = str(getattr(m, "name", "") or "")
    if witness and name and not name.endswith("witness"):
        name += "-witness"
    return rpc_pb2.Member(
        ID=m.id,
        name=name,
        peerURLs=[_url(m.address)] if m.address else [],
        clientURLs=[] if witness else list(getattr(m, "client_urls", ()) or ()),
        isLearner=m.kind == "learner",
    )


class ClusterServicer(EtcdBase, rpc_pb2_grpc.ClusterServicer):  # type: ignore[misc]
    """MemberList/Add/Remove/Promote (Update is not supported)."""

    def _members(self) -> list[Any]:
        return [member_pb(m) for m in self.node.status().members]

    async def MemberList(self, request: Any, context: Any) -> Any:
        """The configuration as this member knows it (committed changes)."""

        async def work() -> Any:
            resp = rpc_pb2.MemberListResponse(members=self._members())
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def MemberAdd(self, request: Any, context: Any) -> Any:
        """Add a voter or learner at the first peer URL; its id is the next free one."""

        async def work() -> Any:
            if not request.peerURLs:
                raise EtcdError("member_bad_urls")
            address = _address(request.peerURLs[0])
            status = self.node.status()
            if any(m.address == address for m in status.members):
                raise EtcdError("peer_url_exists")
            new_id = max((m.id for m in status.members), default=0) + 1
            role = "learner" if request.isLearner else "voter"
            await self.node.add_member(new_id, address, role, timeout=self.budget(context),
                                       forward=True)
            members = self._members()
            added = next((m for m in members if new_id == m.ID), None)
            resp = rpc_pb2.MemberAddResponse(members=members)
            if added is not None:
                resp.member.CopyFrom(added)
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    def _member(self, member_id: int) -> Any:
        for m in self.node.status().members:
            if m.id == member_id:
                return m
        raise EtcdError("member_not_found")

    async def MemberRemove(self, request: Any, context: Any) -> Any:
        """Remove a member."""

        async def work() -> Any:
            self._member(request.ID)
            await self.node.remove_member(request.ID, timeout=self.budget(context), forward=True)
            resp = rpc_pb2.MemberRemoveResponse(members=self._members())
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def MemberPromote(self, request: Any, context: Any) -> Any:
        """Promote a learner to a voter."""

        async def work() -> Any:
            m = self._member(request.ID)
            if m.kind != "learner":
                raise EtcdError("member_not_learner")
            await self.node.add_member(m.id, m.address, "voter", timeout=self.budget(context),
                                       forward=True)
            resp = rpc_pb2.MemberPromoteResponse(members=self._members())
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def MemberUpdate(self, request: Any, context: Any) -> Any:
        """Not supported: a member's address changes by removing and re-adding it."""
        await self.fail(context, EtcdError("not_capable", "MemberUpdate is not supported"))


class MaintenanceServicer(EtcdBase, rpc_pb2_grpc.MaintenanceServicer):  # type: ignore[misc]
    """Status, Alarm, Snapshot, MoveLeader, HashKV, Defragment."""

    async def Alarm(self, request: Any, context: Any) -> Any:
        """No alarms are ever raised (no space quota, no corruption alarm)."""

        async def work() -> Any:
            resp = rpc_pb2.AlarmResponse()
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def Status(self, request: Any, context: Any) -> Any:
        """This member: version, store size, leader, Raft index/term/applied, learner."""

        async def work() -> Any:
            st = self.node.status()
            me = next((m for m in st.members if m.id == st.id), None)
            size = _store_size(self.node)
            resp = rpc_pb2.StatusResponse(
                version=VERSION,
                dbSize=size,
                dbSizeInUse=size,
                leader=st.leader_id or 0,
                raftIndex=st.commit,
                raftTerm=st.term,
                raftAppliedIndex=st.applied,
                errors=list(getattr(st, "errors", ()) or ()),
                isLearner=me is not None and me.kind == "learner",
            )
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def Defragment(self, request: Any, context: Any) -> Any:
        """Nothing to do: LevelDB reclaims space by its own compactions."""

        async def work() -> Any:
            resp = rpc_pb2.DefragmentResponse()
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def HashKV(self, request: Any, context: Any) -> Any:
        """A CRC-32 of every key and record at the current revision (equal on in-sync members)."""

        async def work() -> Any:
            sm = self.state_machine()
            loop = asyncio.get_running_loop()
            crc, revision, compacted = await loop.run_in_executor(None, _hash_kv, sm)
            resp = rpc_pb2.HashKVResponse(hash=crc, compact_revision=compacted)
            self.header(resp.header, revision)
            return resp

        return await self.answer(context, work)

    async def Snapshot(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """The KV snapshot stream, padded to 512 bytes, then its SHA-256."""
        try:
            sm = self.state_machine()
            # Written out in a worker thread: the loop keeps serving meanwhile.
            spool, size = await asyncio.get_running_loop().run_in_executor(None, _spool, sm)
        except Exception as exc:
            await self.fail(context, exc)
            return
        with spool:
            sent = 0
            while True:
                blob = spool.read(_CHUNK)
                if not blob:
                    break
                sent += len(blob)
                resp = rpc_pb2.SnapshotResponse(remaining_bytes=size - sent, blob=blob)
                self.header(resp.header)
                yield resp

    async def MoveLeader(self, request: Any, context: Any) -> Any:
        """Transfer leadership to ``targetID`` (sent to the leader, as etcdctl does)."""

        async def work() -> Any:
            if not self.node.is_leader:
                raise EtcdError("not_leader")
            if not any(m.id == request.targetID and m.kind == "voter"
                       for m in self.node.status().members):
                raise EtcdError("bad_transferee")
            await self.node.transfer_leadership(request.targetID, timeout=self.budget(context))
            resp = rpc_pb2.MoveLeaderResponse()
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def Downgrade(self, request: Any, context: Any) -> Any:
        """Not supported (nexus_raft has no cluster version to downgrade)."""
        await self.fail(context, EtcdError("not_capable", "Downgrade is not supported"))


def _store_size(node: Any) -> int:
    path = getattr(getattr(node, "config", None), "store_path", None)
    if path is None:
        return 0
    try:
        return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())
    except OSError:
        return 0


def _hash_kv(sm: Any) -> tuple[int, int, int]:
    """(CRC-32 of every key and record, revision, compact revision) from one view."""
    crc = 0
    with sm.read_view() as view:
        for key, rec in view.items(b"", None):
            crc = zlib.crc32(key, crc)
            crc = zlib.crc32(rec.value, crc)
            crc = zlib.crc32(b"%d,%d,%d,%d" % (rec.mod, rec.create, rec.version, rec.lease), crc)
        return crc, view.revision, view.compacted


def _spool(sm: Any) -> tuple[Any, int]:
    """The snapshot in a temporary file (padded, SHA-256 appended) and its size."""
    spool = tempfile.TemporaryFile(prefix="nexus-etcd-snapshot-")  # noqa: SIM115 - returned
    digest = hashlib.sha256()
    size = 0
    for chunk in sm.snapshot():
        spool.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    pad = b"\x00" * (-size % 512)
    spool.write(pad)
    digest.update(pad)
    spool.write(digest.digest())
    spool.seek(0)
    return spool, size + len(pad) + 32


class AuthServicer(EtcdBase, rpc_pb2_grpc.AuthServicer):  # type: ignore[misc]
    """Authentication is not supported: status says disabled, the rest says not enabled."""

    async def AuthStatus(self, request: Any, context: Any) -> Any:
        """Authentication is disabled."""

        async def work() -> Any:
            resp = rpc_pb2.AuthStatusResponse(enabled=False)
            self.header(resp.header)
            return resp

        return await self.answer(context, work)

    async def AuthDisable(self, request: Any, context: Any) -> Any:
        """Already disabled."""

        async def work() -> Any:
            resp = rpc_pb2.AuthDisableResponse()
            self.header(resp.header)
            return resp

        return await self.answer(context, work)


def _not_enabled(name: str) -> Any:
    async def handler(self: AuthServicer, request: Any, context: Any) -> Any:
        await self.fail(context, EtcdError("auth_not_enabled"))

    handler.__name__ = name
    handler.__doc__ = "Refused: authentication is not enabled (not supported)."
    return handler


for _name in (
    "AuthEnable", "Authenticate", "UserAdd", "UserGet", "UserList", "UserDelete",
    "UserChangePassword", "UserGrantRole", "UserRevokeRole", "RoleAdd", "RoleGet",
    "RoleList", "RoleDelete", "RoleGrantPermission", "RoleRevokePermission",
):
    setattr(AuthServicer, _name, _not_enabled(_name))
