"""etcd's gRPC errors: the status code and the exact message clients match on.

Every failure of an etcd RPC leaves through :func:`etcd_error`, which maps
nexus_raft's exceptions and apply-time result codes onto the errors etcd
3.4 sends (``rpctypes``), so client libraries that compare messages (to
retry, to re-watch from a compact revision, to drop a lost lease) behave
as they would against etcd.
"""

from __future__ import annotations

import logging

import grpc

from nexus_raft.errors import (
    Compacted,
    InvalidArgument,
    NexusRaftError,
    NotLeader,
    ProposalDropped,
    Timeout,
    TooLarge,
    Unavailable,
)
from nexus_raft.kv.etcd.checks import RequestError
from nexus_raft.kv.etcd.command import Code
from nexus_raft.kv.views import FutureRevision

__all__ = ["ERRORS", "EtcdError", "etcd_error", "from_code"]

_log = logging.getLogger(__name__)

_C = grpc.StatusCode
ERRORS: dict[str, tuple[grpc.StatusCode, str]] = {
    "empty_key": (_C.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    "key_not_found": (_C.INVALID_ARGUMENT, "etcdserver: key not found"),
    "value_provided": (_C.INVALID_ARGUMENT, "etcdserver: value is provided"),
    "lease_provided": (_C.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    "too_many_ops": (_C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    "duplicate_key": (_C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    "compacted": (_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    "future_rev": (_C.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    "lease_not_found": (_C.NOT_FOUND, "etcdserver: requested lease not found"),
    "lease_exists": (_C.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    "lease_ttl_too_large": (_C.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    "member_exists": (_C.FAILED_PRECONDITION, "etcdserver: member ID already exist"),
    "peer_url_exists": (_C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    "member_bad_urls": (_C.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid"),
    "member_not_found": (_C.NOT_FOUND, "etcdserver: member not found"),
    "member_not_learner": (_C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    "request_too_large": (_C.INVALID_ARGUMENT, "etcdserver: request is too large"),
    # Not one of etcd's (etcd sends replies of any size); see service_kv.py.
    "response_too_large": (_C.RESOURCE_EXHAUSTED,
                           "etcdserver: range reply is over the message limit; use a limit"),
    "auth_not_enabled": (_C.FAILED_PRECONDITION, "etcdserver: authentication is not enabled"),
    "no_leader": (_C.UNAVAILABLE, "etcdserver: no leader"),
    "not_leader": (_C.FAILED_PRECONDITION, "etcdserver: not leader"),
    "leader_changed": (_C.UNAVAILABLE, "etcdserver: leader changed"),
    "not_capable": (_C.UNAVAILABLE, "etcdserver: not capable"),
    # Not one of etcd's (etcd has no witnesses): UNAVAILABLE, so a client
    # with several endpoints retries a read on another member.
    "witness": (_C.UNAVAILABLE, "etcdserver: not capable: this member is a witness (it votes "
                "and holds no data); send data requests to a full member"),
    "stopped": (_C.UNAVAILABLE, "etcdserver: server stopped"),
    "timeout": (_C.UNAVAILABLE, "etcdserver: request timed out"),
    "unhealthy": (_C.UNAVAILABLE, "etcdserver: unhealthy cluster"),
    "bad_transferee": (_C.FAILED_PRECONDITION, "etcdserver: bad leader transferee"),
}
"""etcd error name -> (gRPC code, message), as etcd 3.4's rpctypes define them."""


class EtcdError(Exception):
    """An etcd error to answer with: ``name`` is a key of :data:`ERRORS`."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(detail or name)
        self.name = name
        self.code, self.message = ERRORS[name]


_CODES = {
    Code.KEY_NOT_FOUND: "key_not_found",
    Code.LEASE_NOT_FOUND: "lease_not_found",
    Code.LEASE_EXISTS: "lease_exists",
    Code.COMPACTED: "compacted",
    Code.FUTURE_REV: "future_rev",
    Code.TOO_LARGE: "request_too_large",
}


def from_code(code: Code, detail: bytes) -> EtcdError:
    """The error for an apply-time failure ``code`` (INVALID carries the check's name)."""
    if code is Code.INVALID and detail.decode("utf-8", "replace") in ERRORS:
        return EtcdError(detail.decode())
    name = _CODES.get(code)
    if name is None:
        _log.error("etcd command failed at apply: %s %s", code.name, detail[:200])
        return EtcdError("not_capable", detail.decode("utf-8", "replace"))
    return EtcdError(name)


def etcd_error(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(gRPC code, message) to answer ``exc`` with."""
    if isinstance(exc, EtcdError):
        return exc.code, exc.message
    if isinstance(exc, RequestError):
        return ERRORS[exc.name]
    if isinstance(exc, Compacted):
        return ERRORS["compacted"]
    if isinstance(exc, FutureRevision):
        return ERRORS["future_rev"]
    if isinstance(exc, NotLeader):
        return ERRORS["no_leader"] if exc.leader_id is None else ERRORS["not_leader"]
    if isinstance(exc, Timeout):
        return ERRORS["timeout"]
    if isinstance(exc, ProposalDropped):
        return ERRORS["leader_changed"]
    if isinstance(exc, TooLarge):
        return ERRORS["request_too_large"]
    if isinstance(exc, Unavailable):
        return ERRORS["stopped"] if "shutting down" in str(exc) else ERRORS["unhealthy"]
    if isinstance(exc, InvalidArgument):
        return _C.INVALID_ARGUMENT, f"etcdserver: {exc}"
    if isinstance(exc, NexusRaftError):
        return _C.UNAVAILABLE, f"etcdserver: {exc}"
    _log.exception("unexpected error in an etcd RPC", exc_info=exc)
    return _C.UNKNOWN, f"etcdserver: internal error: {type(exc).__name__}"
