"""What a data directory records about itself: its cluster, its member id, how it began.

The first start writes an :class:`Identity` into the node's store (tree
``node.identity``) right after the initial configuration (a bootstrap) or
before anything else (a member joining a running cluster). Every later
start reads it back, and the record wins over the command line:

* the cluster id is the recorded one; ``peers`` (``--peers``) then only
  helps find the peers, so restarting a member with an updated peer list
  after a membership change keeps it in its cluster;
* a configured ``id`` other than the recorded member id, or an explicit
  ``cluster_id`` other than the recorded one, is refused with
  :class:`~nexus_raft.errors.IdentityMismatch`: a data directory is never
  served under another member's id or as part of another cluster;
* a member that was removed from its cluster is recorded as removed, and
  refuses to start again from that directory.

A data directory written before identities were recorded (a log but no
record) gets one from the configuration it is started with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from nexus_raft.consensus.core.messages import HardState
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.errors import ConfigError, IdentityMismatch, MemberRemoved
from nexus_raft.storage import Store

__all__ = ["IDENTITY_TREE", "Identity", "open_identity", "peek_identity", "record_removal"]

_log = logging.getLogger(__name__)

IDENTITY_TREE = "node.identity"
"""Tree of the node's store holding its :class:`Identity` (key ``identity``)."""

_KEY = b"identity"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Identity:
    """A data directory's identity.

    ``origin`` is ``"bootstrapped"`` (it wrote the initial configuration),
    ``"joined"`` (added to a running cluster) or ``"recorded"`` (the
    directory predates identity records). ``removed_at`` is the log index of
    this member's removal (0 while it is a member).
    """

    cluster_id: str
    member_id: int
    origin: str
    removed_at: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "version": _VERSION,
            "cluster_id": self.cluster_id,
            "member_id": self.member_id,
            "origin": self.origin,
            "removed_at": self.removed_at,
        }

    @classmethod
    def from_json(cls, data: object) -> Identity:
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ConfigError(f"unreadable data directory identity record: {data!r}")
        try:
            return cls(
                str(data["cluster_id"]),
                int(data["member_id"]),
                str(data["origin"]),
                int(data.get("removed_at", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"unreadable data directory identity record: {exc}") from None


def read_identity(store: Store) -> Identity | None:
    """The recorded identity, or None for a directory without one."""
    data = store.tree(IDENTITY_TREE).get_json(_KEY)
    return None if data is None else Identity.from_json(data)


def peek_identity(store_path: str | Path) -> Identity | None:
    """The identity recorded in the store at ``store_path`` (None: none, or no store).

    Opens the store briefly (it must not be in use) and never creates one.
    """
    if not Path(store_path).exists():
        return None
    store = Store.open(store_path)
    try:
        return read_identity(store)
    finally:
        store.close()


def _write(store: Store, identity: Identity) -> None:
    store.tree(IDENTITY_TREE).set_json(_KEY, identity.to_json())
    store.flush()


def _fresh(log: LogStore) -> bool:
    return log.last_index() == 0 and log.snapshot().index == 0 and log.hard_state == HardState()


def open_identity(
    store: Store, log: LogStore, cfg: NodeConfig, *, bootstrap: Callable[[], None]
) -> Identity:
    """Read, check or create the data directory's identity (see the module docstring).

    ``bootstrap`` is called (before the record is written) when a fresh
    directory of an initial member must write the initial configuration.
    Raises ``IdentityMismatch`` or ``MemberRemoved`` with a one-line reason.
    """
    where = cfg.data_dir
    stored = read_identity(store)
    if stored is not None:
        if stored.member_id != cfg.id:
            raise IdentityMismatch(
                f"data directory {where} belongs to member {stored.member_id} of cluster "
                f"{stored.cluster_id}, not to member {cfg.id}: start it with --id "
                f"{stored.member_id}, or give member {cfg.id} its own data directory"
            )
        if cfg.cluster_id is not None and cfg.cluster_id != stored.cluster_id:
            raise IdentityMismatch(
                f"data directory {where} belongs to cluster {stored.cluster_id}, not to "
                f"--cluster-id {cfg.cluster_id}: a data directory is never served as part "
                "of another cluster"
            )
        if stored.removed_at:
            raise MemberRemoved(
                f"member {stored.member_id} was removed from cluster {stored.cluster_id} at "
                f"index {stored.removed_at}; its data directory {where} cannot serve again "
                "(add the member anew with an empty data directory)"
            )
        derived = cfg.effective_cluster_id
        if cfg.cluster_id is None and derived != stored.cluster_id:
            _log.info(
                "node %d: cluster %s (recorded in %s); the peer list would derive %s, but after "
                "the first start --peers only helps find the peers",
                cfg.id, stored.cluster_id, where, derived,
            )  # fmt: skip
        return stored
    if _fresh(log):
        if cfg.join:
            if cfg.cluster_id is None:
                raise ConfigError("a member joining a running cluster needs its cluster id")
            identity = Identity(cfg.cluster_id, cfg.id, "joined")
        else:
            bootstrap()
            identity = Identity(cfg.effective_cluster_id, cfg.id, "bootstrapped")
    else:
        identity = Identity(cfg.effective_cluster_id, cfg.id, "recorded")
        _log.info(
            "node %d: recording the identity of %s: member %d of cluster %s",
            cfg.id, where, cfg.id, identity.cluster_id,
        )  # fmt: skip
    _write(store, identity)
    return identity


def record_removal(store: Store, identity: Identity, index: int) -> Identity:
    """Mark the directory's member as removed at ``index`` (it will not start again)."""
    removed = replace(identity, removed_at=index)
    _write(store, removed)
    return removed
