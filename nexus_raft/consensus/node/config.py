"""``NodeConfig``: everything a :class:`~nexus_raft.consensus.node.node.RaftNode` needs to run.

Validation happens at construction: a wrong Python type raises ``TypeError``
naming the field, an impossible value raises :class:`~nexus_raft.errors.ConfigError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_raft.errors import ConfigError
from nexus_raft.transport.address import parse_endpoint
from nexus_raft.transport.identity import DEFAULT_TEMPLATE, PeerIdentity
from nexus_raft.transport.tls import TLSConfig

__all__ = ["WILDCARD_HOSTS", "NodeConfig", "derive_cluster_id"]

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
"""Listen hosts that mean "every interface": not an address anyone can dial."""


def derive_cluster_id(
    peers: Mapping[int, str],
    witnesses: Iterable[int] = (),
    learners: Iterable[int] = (),
) -> str:
    """A stable cluster id derived from the whole initial configuration.

    It covers every member's id and address and which members are
    witnesses and learners, so members started with different initial
    configurations (one of them without ``--witness 3``, say) derive
    different ids and refuse each other's traffic instead of forming a
    cluster whose members disagree on who is what. A plain cluster (voters
    only) keeps the id earlier versions derived from ``peers`` alone.
    """
    text = ",".join(f"{nid}={peers[nid]}" for nid in sorted(peers))
    w, lrn = sorted(set(witnesses)), sorted(set(learners))
    if w or lrn:
        text += ";witnesses=" + ",".join(map(str, w)) + ";learners=" + ",".join(map(str, lrn))
    return "nx-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


@dataclass
class NodeConfig:
    """Configuration of one Raft member.

    ``peers`` is the full initial membership, this node included (id -> ``host:port``).
    ``witnesses`` and ``learners`` mark which of those peers are witnesses
    and (non-voting) learners. ``join`` starts a node that is being added to
    a running cluster: it does not bootstrap a configuration of its own and
    waits for the leader to send it one.

    Identity: the first start records the cluster id and this member's id in
    the data directory. Later starts use the recorded cluster id (``peers``
    then only helps find the peers) and refuse a ``cluster_id`` or ``id``
    that contradicts the record (:class:`~nexus_raft.errors.IdentityMismatch`).

    Timing: the core is ticked every ``tick_interval`` seconds; a follower
    campaigns after a random ``election_ticks``..``2*election_ticks`` ticks
    without hearing from a leader (defaults: 200-400 ms); a leader sends
    heartbeats every ``heartbeat_ticks`` ticks.

    ``max_batch_bytes`` bounds one AppendRequest (at least one entry is always
    sent); ``max_proposal_bytes`` bounds one command (it must fit one message).

    Compaction: every ``snapshot_every`` applied entries the log is compacted,
    keeping the last ``keep_entries`` entries so a slightly slow follower still
    catches up from the log instead of a snapshot.

    ``parallel_append``: a leader sends its AppendRequests before its own
    fsync of the same entries (safe: the core counts the leader's copy toward
    a commit only once it is durable; votes, acknowledgements and term changes
    are still persisted before anything that depends on them is sent). False
    restores the strict persist-then-send order at about twice the latency.

    A joining node must use the cluster's id: pass ``cluster_id`` explicitly
    (the derived default only matches when ``peers`` is the initial peer set).

    ``metrics_listen`` (``host:port``): serve Prometheus ``/metrics`` and the
    ``/health``, ``/livez`` and ``/readyz`` probes over HTTP there.

    Ports and security: client traffic (the application's services, e.g. the
    KV API) is served on ``listen``; peer traffic on ``peer_listen``. With
    ``peer_listen`` None (or equal to ``listen``) both share one port (fine on
    a laptop); otherwise the client port never serves the peer service, and
    ``peers`` (the address book) names each member's *peer* address. ``tls``
    secures the client port (and a shared port); ``peer_tls`` secures the
    separate peer port. A node dials its peers with the setup their peer
    ports serve (every member has the same layout): ``peer_tls`` with a
    separate peer port (None: plaintext, even when ``tls`` secures the
    client port), ``tls`` with a shared one. When the peer port
    requires client certificates (mutual TLS), every peer request's sender
    must be the member its certificate names by the ``peer_identity`` rule
    (see :class:`~nexus_raft.transport.identity.PeerIdentity`; None: any
    certificate of the CA speaks for any member). Incoming snapshots are
    refused beyond ``max_snapshot_bytes`` or when staging them would leave
    less than ``snapshot_min_free_bytes`` free on the data directory's disk.

    Member attributes (see :mod:`~nexus_raft.consensus.node.attributes`): the
    node publishes ``name`` (default ``nexus-<id>``) and its client URL
    through the log, so every member can name it and send clients to it.
    The client URL is ``advertise_client`` (``host:port``, ``http://`` or
    ``https://``), by default the bound ``listen`` address (``https`` with
    ``tls``); a wildcard ``listen`` host (``0.0.0.0``, ``::``) cannot be
    dialled, so such a node publishes no client URL unless ``advertise_client``
    names one.
    """

    id: int
    listen: str
    peers: dict[int, str]
    data_dir: str | Path
    witnesses: frozenset[int] = frozenset()
    cluster_id: str | None = None
    learners: frozenset[int] = frozenset()
    tick_interval: float = 0.02
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    snapshot_every: int = 10_000
    keep_entries: int = 5_000
    max_batch_bytes: int = 1 << 20
    max_proposal_bytes: int = 8 << 20
    max_entries_per_msg: int = 4096
    max_inflight_msgs: int = 64
    pre_vote: bool = True
    check_quorum: bool = True
    join: bool = False
    parallel_append: bool = True
    tls: Any = None  # nexus_raft.transport.TLSConfig | None
    metrics_listen: str | None = None
    peer_listen: str | None = None
    peer_tls: Any = None  # nexus_raft.transport.TLSConfig | None
    peer_identity: str | None = DEFAULT_TEMPLATE
    max_snapshot_bytes: int = 64 << 30
    snapshot_min_free_bytes: int = 64 << 20
    name: str | None = None
    advertise_client: str | None = None

    def __post_init__(self) -> None:
        _check_int("id", self.id, minimum=1)
        if not isinstance(self.listen, str):
            raise TypeError(f"listen must be a str, not {type(self.listen).__name__}")
        if not self.listen:
            raise ConfigError("listen must not be empty")
        if not isinstance(self.peers, Mapping):
            raise TypeError(f"peers must be a dict, not {type(self.peers).__name__}")
        peers: dict[int, str] = {}
        for nid, endpoint in self.peers.items():
            _check_int("peers key", nid, minimum=1)
            if not isinstance(endpoint, str):
                raise TypeError(f"peers[{nid}] must be a str, not {type(endpoint).__name__}")
            peers[nid] = endpoint
        self.peers = peers
        if not self.join and self.id not in peers:
            raise ConfigError(f"peers must include this node's id {self.id} (or set join=True)")
        if not isinstance(self.data_dir, (str, Path)):
            raise TypeError(f"data_dir must be a str or Path, not {type(self.data_dir).__name__}")
        if not isinstance(self.witnesses, (frozenset, set)):
            raise TypeError(f"witnesses must be a frozenset, not {type(self.witnesses).__name__}")
        self.witnesses = frozenset(self.witnesses)
        for w in self.witnesses:
            _check_int("witnesses item", w, minimum=1)
        unknown = self.witnesses - set(peers)
        if unknown and not self.join:
            raise ConfigError(f"witnesses {sorted(unknown)} are not in peers")
        if not isinstance(self.learners, (frozenset, set)):
            raise TypeError(f"learners must be a frozenset, not {type(self.learners).__name__}")
        self.learners = frozenset(self.learners)
        for lrn in self.learners:
            _check_int("learners item", lrn, minimum=1)
        if self.learners - set(peers):
            raise ConfigError(f"learners {sorted(self.learners - set(peers))} are not in peers")
        if self.learners & self.witnesses:
            raise ConfigError(
                f"members {sorted(self.learners & self.witnesses)} cannot be learners and witnesses"
            )
        if not self.join and peers and not set(peers) - self.witnesses - self.learners:
            raise ConfigError("a cluster needs at least one full (non-witness) voter")
        if self.cluster_id is not None and not isinstance(self.cluster_id, str):
            raise TypeError(f"cluster_id must be a str, not {type(self.cluster_id).__name__}")
        if isinstance(self.tick_interval, bool) or not isinstance(self.tick_interval, (int, float)):
            raise TypeError(
                f"tick_interval must be a float, not {type(self.tick_interval).__name__}"
            )
        if not 0.001 <= self.tick_interval <= 10.0:
            raise ConfigError(f"tick_interval must be in [0.001, 10] s, got {self.tick_interval}")
        _check_int("heartbeat_ticks", self.heartbeat_ticks, minimum=1)
        _check_int("election_ticks", self.election_ticks, minimum=self.heartbeat_ticks + 1)
        _check_int("snapshot_every", self.snapshot_every, minimum=1)
        _check_int("keep_entries", self.keep_entries, minimum=0)
        _check_int("max_batch_bytes", self.max_batch_bytes, minimum=1024)
        _check_int("max_proposal_bytes", self.max_proposal_bytes, minimum=1)
        _check_int("max_entries_per_msg", self.max_entries_per_msg, minimum=1)
        _check_int("max_inflight_msgs", self.max_inflight_msgs, minimum=1)
        if self.metrics_listen is not None and not isinstance(self.metrics_listen, str):
            raise TypeError(
                f"metrics_listen must be a str or None, not {type(self.metrics_listen).__name__}"
            )
        for name in ("pre_vote", "check_quorum", "join", "parallel_append"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        self._check_security()

    def _check_security(self) -> None:
        if self.peer_listen is not None:
            if not isinstance(self.peer_listen, str):
                raise TypeError(f"peer_listen must be a str, not {type(self.peer_listen).__name__}")
            if not self.peer_listen:
                raise ConfigError("peer_listen must not be empty (None: share listen)")
        for name in ("tls", "peer_tls"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, TLSConfig):
                raise TypeError(f"{name} must be a TLSConfig or None, not {type(value).__name__}")
            if value is not None and value.cert is None:
                raise ConfigError(f"{name} needs cert and key: it secures a port this node serves")
        shared = self.peer_tls is not None and not self.separate_peer_port
        if shared and self.peer_tls != self.tls:
            raise ConfigError(
                "peer_tls needs a separate peer_listen address (one port has one TLS "
                "setup; on a shared port use tls)"
            )
        if self.peer_identity is not None:
            if not isinstance(self.peer_identity, str):
                raise TypeError(
                    f"peer_identity must be a str or None, not {type(self.peer_identity).__name__}"
                )
            try:
                PeerIdentity(self.peer_identity)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        _check_int("max_snapshot_bytes", self.max_snapshot_bytes, minimum=1)
        self._check_attributes()
        _check_int("snapshot_min_free_bytes", self.snapshot_min_free_bytes, minimum=0)

    def _check_attributes(self) -> None:
        if self.name is not None:
            if not isinstance(self.name, str):
                raise TypeError(f"name must be a str or None, not {type(self.name).__name__}")
            if not self.name or len(self.name) > 256:
                raise ConfigError("name must be 1 to 256 characters")
        if self.advertise_client is not None:
            if not isinstance(self.advertise_client, str):
                raise TypeError(
                    "advertise_client must be a str or None, not "
                    f"{type(self.advertise_client).__name__}"
                )
            try:
                host, _, _ = parse_endpoint(self.advertise_client)
            except ValueError as exc:
                raise ConfigError(f"advertise_client: {exc}") from None
            if host in WILDCARD_HOSTS:
                raise ConfigError(
                    f"advertise_client {self.advertise_client!r} is a wildcard address: "
                    "name one clients can dial"
                )

    @property
    def separate_peer_port(self) -> bool:
        """Whether peer traffic has its own port (``peer_listen`` set and not ``listen``)."""
        return self.peer_listen is not None and self.peer_listen != self.listen

    @property
    def peer_server_tls(self) -> TLSConfig | None:
        """The TLS setup of the port that serves peers."""
        return self.peer_tls if self.separate_peer_port else self.tls  # type: ignore[no-any-return]

    @property
    def dial_tls(self) -> TLSConfig | None:
        """What this node presents and trusts when it dials its peers.

        The peers' peer ports serve what this node's serves
        (:attr:`peer_server_tls`): a plaintext separate peer port beside a
        TLS client port is dialled in plaintext (dialling it with TLS failed
        every handshake, and the cluster never elected a leader).
        """
        return self.peer_server_tls

    @property
    def identity_rule(self) -> PeerIdentity | None:
        """The certificate rule peer senders are checked against, or None when unchecked.

        Checked only when the peer port requires client certificates.
        """
        tls = self.peer_server_tls
        if tls is None or not tls.require_client_cert or self.peer_identity is None:
            return None
        return PeerIdentity(self.peer_identity)

    @property
    def is_witness(self) -> bool:
        """Whether this node runs as a witness (no state machine, metadata log)."""
        return self.id in self.witnesses

    @property
    def effective_cluster_id(self) -> str:
        """``cluster_id`` or, when unset, the id derived from the initial configuration.

        A running node's id is :attr:`RaftNode.cluster_id` (the one its data
        directory recorded at the first start).
        """
        if self.cluster_id is not None:
            return self.cluster_id
        return derive_cluster_id(self.peers, self.witnesses, self.learners)

    @property
    def store_path(self) -> Path:
        """Where the node's one LevelDB store lives."""
        return Path(self.data_dir) / "store"

    @property
    def snapshot_dir(self) -> Path:
        """Where incoming snapshots are staged before they are installed."""
        return Path(self.data_dir) / "snapshots"
