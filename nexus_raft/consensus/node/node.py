"""RaftNode: one member of a replicated state machine, on real storage and gRPC.

The node wires the parts together and offers the public API; the work is
done by its helpers:

- :mod:`~nexus_raft.consensus.node.driver`: the asyncio task that ticks the
  core, persists each Ready (one fsync per Ready), sends, hands committed
  entries on, and advances;
- :mod:`~nexus_raft.consensus.node.apply`: the apply task and proposal results;
- :mod:`~nexus_raft.consensus.node.propose`: ``propose``/``propose_many``/``read_index``;
- :mod:`~nexus_raft.consensus.node.peers`: per-peer pipelined streams;
- :mod:`~nexus_raft.consensus.node.server`: the transport handler (peer requests);
- :mod:`~nexus_raft.consensus.node.snapshot`: snapshot streaming and staging.

One LevelDB store per node at ``<data_dir>/store`` holds the log
(:class:`~nexus_raft.consensus.log.store.LogStore`), the state machine's trees
and the address book (tree ``node.peers``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from nexus_raft.consensus.core.config import Config
from nexus_raft.consensus.core.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    Role,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.admin import AdminAPI
from nexus_raft.consensus.node.alerts import Alerts
from nexus_raft.consensus.node.apply import Applier, Proposals
from nexus_raft.consensus.node.attributes import TREE as ATTRIBUTES_TREE
from nexus_raft.consensus.node.attributes import AttributeBook, MemberAttributes
from nexus_raft.consensus.node.backup import encode_backup_async, new_meta, stream_chunks
from nexus_raft.consensus.node.boot import (
    PEERS_TREE,
    bootstrap_log,
    finish_install,
    load_addresses,
    recover_position,
)
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.datadir import Identity, open_identity
from nexus_raft.consensus.node.driver import Driver
from nexus_raft.consensus.node.forward import Forwarder, serve_forward
from nexus_raft.consensus.node.guard import term_refusal
from nexus_raft.consensus.node.health import HealthMonitor
from nexus_raft.consensus.node.metrics import NodeMetrics
from nexus_raft.consensus.node.observe import Observability
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.publish import Publisher, own_attributes
from nexus_raft.consensus.node.serving import ServingAPI
from nexus_raft.consensus.node.standing import Halting, Standing
from nexus_raft.consensus.node.status import MemberStatus, NodeStatus
from nexus_raft.consensus.state_machine import ProvidesMetrics, ServesClients, StateMachine
from nexus_raft.errors import (
    ConfigError,
    ConsensusError,
    Unavailable,
)
from nexus_raft.storage import Store
from nexus_raft.storage.backend import StorageBackend
from nexus_raft.transport.address import NodeAddress
from nexus_raft.transport.factory import GRPC, PeerTransport
from nexus_raft.transport.ports import check_listen
from nexus_raft.transport.ratelimit import LogLimiter
from nexus_raft.transport.server import RaftServer, ServiceServer

__all__ = ["MemberStatus", "NodeStatus", "RaftNode"]

_log = logging.getLogger(__name__)


class RaftNode(ServingAPI, AdminAPI, Halting):
    """A Raft member: ``start()``, ``propose()``, ``read_index()``, ``status()``, ``shutdown()``.

    ``state_machine`` is required unless this node is a witness
    (``config.id in config.witnesses``), which keeps a metadata-only log and
    applies nothing. See DESIGN.md for the contract.

    The keyword-only arguments are seams for the whole-node simulator
    (``tests/sim_node``); production leaves them unset:

    - ``transport`` makes the peer client pool and server (default: gRPC);
    - ``executor`` runs blocking work (large saves, big apply batches,
      snapshot reads and restores); default: a private 3-thread pool, shut
      down with the node. A given executor belongs to the caller;
    - ``rng`` is the core's random source (election timeouts); default: a
      fresh ``random.Random()``;
    - ``storage`` is the backend of the node's Store (default: LevelDB).
    """

    def __init__(
        self,
        config: NodeConfig,
        state_machine: StateMachine | None = None,
        *,
        transport: PeerTransport | None = None,
        executor: Executor | None = None,
        rng: random.Random | None = None,
        storage: StorageBackend | None = None,
    ) -> None:
        if not isinstance(config, NodeConfig):
            raise TypeError(f"config must be a NodeConfig, not {type(config).__name__}")
        if config.is_witness:
            if state_machine is not None:
                raise ConfigError(f"node {config.id} is a witness: it takes no state machine")
        elif state_machine is None:
            raise ConfigError("a full member needs a state_machine")
        elif not isinstance(state_machine, StateMachine):
            raise TypeError(
                f"state_machine must implement StateMachine, not {type(state_machine).__name__}"
            )
        if transport is not None and not isinstance(transport, PeerTransport):
            raise TypeError(f"transport must be a PeerTransport, not {type(transport).__name__}")
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(f"executor must be an Executor, not {type(executor).__name__}")
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {type(rng).__name__}")
        if storage is not None and not isinstance(storage, StorageBackend):
            raise TypeError(f"storage must be a StorageBackend, not {type(storage).__name__}")
        self.config = config
        self._sm = state_machine
        self._transport: PeerTransport = transport or GRPC
        self._given_executor = executor
        self._rng = rng
        self._storage = storage
        self._servicers: list[Callable[[grpc.aio.Server], None]] = []
        self._peer_servicers: list[Callable[[grpc.aio.Server], None]] = []
        self._store: Store | None = None
        self._log_store: LogStore | None = None
        self._driver: Driver | None = None
        self._applier: Applier | None = None
        self._peers: Peers | None = None
        self._forwarder: Forwarder | None = None
        self._publisher: Publisher | None = None
        self._record: Identity | None = None
        self._standing: Standing | None = None
        self._init_halting()
        # The client port's server; the same object as _peer_server when one
        # port serves both.
        self._server: ServiceServer | None = None
        self._peer_server: RaftServer | None = None
        self._identity = config.identity_rule
        self._warn = LogLimiter(_log)
        self._executor: Executor | None = None
        self._proposals = Proposals()
        self._ctx = itertools.count(1)
        # Per start (see propose._CTX): from the injected source when there is one.
        self._ctx_nonce = (rng if rng is not None else random.Random()).getrandbits(64)
        self._started = self._closed = False
        self._shutting_down: asyncio.Future[None] | None = None
        self._failure: str | None = None
        self._failed_event = asyncio.Event()
        self._failing: set[asyncio.Task[None]] = set()
        self._last_compact = 0
        self.metrics = NodeMetrics()
        self.alerts = Alerts(config.id)
        self._startup_commit = 0
        # Seconds of silence after which a member counts as unreachable.
        self._down_after = max(1.0, 2 * config.election_ticks * config.tick_interval)
        self._health = HealthMonitor(
            self.status, self.alerts, election_timeout=config.election_ticks * config.tick_interval,
            read_index=None if config.is_witness else self.read_index,
        )  # fmt: skip
        self._observe = Observability(self, self._health, self.alerts)
        if isinstance(state_machine, ProvidesMetrics):
            self._observe.add_collectors(state_machine.metrics_collectors())

    # --- properties ---------------------------------------------------------------------

    @property
    def id(self) -> int:
        """This member's id."""
        return self.config.id

    @property
    def cluster_id(self) -> str:
        """The cluster id every peer and client request must carry.

        Once started, the id recorded in the data directory at its first
        start (see :mod:`~nexus_raft.consensus.node.datadir`); before, the
        configured or derived one.
        """
        if self._record is not None:
            return self._record.cluster_id
        return self.config.effective_cluster_id

    @property
    def state_machine(self) -> StateMachine | None:
        """The state machine (None on a witness)."""
        return self._sm

    @property
    def leader_id(self) -> int | None:
        """The known leader's id, or None."""
        d = self._driver
        return d.leader_id if d is not None and d.leader_id != NONE else None

    @property
    def is_leader(self) -> bool:
        """Whether this node is the leader right now."""
        d = self._driver
        return d is not None and d.role is Role.LEADER

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, recover, start serving peers and driving the core."""
        if self._started:
            raise ConsensusError("RaftNode.start() called twice")
        self._started = True
        cfg = self.config
        try:
            await self._open(cfg)
        except BaseException:
            await self.shutdown()
            raise

    async def _open(self, cfg: NodeConfig) -> None:
        # Refuse a taken port before anything is written to the data directory.
        if self._transport is GRPC:
            check_listen(cfg.listen)
            if cfg.separate_peer_port and cfg.peer_listen is not None:
                check_listen(cfg.peer_listen, "peer listen address")
        if cfg.metrics_listen is not None:
            check_listen(cfg.metrics_listen, "metrics listen address")
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        self._executor = self._given_executor or ThreadPoolExecutor(
            max_workers=3, thread_name_prefix=f"raft-{cfg.id}"
        )
        # The log writes each Ready as one synced batch either way; a full
        # member's state machine applies unsynced (it replays from the log
        # after a crash, and the store is flushed before any compaction).
        store = self._store = Store.open(
            cfg.store_path, sync=self._sm is None, backend=self._storage
        )
        log = self._log_store = LogStore(store)
        # Before anything else is written: the directory's recorded identity
        # wins over the command line, and a conflict stops the start here.
        self._record = open_identity(store, log, cfg, bootstrap=lambda: bootstrap_log(log, cfg))
        snap = log.snapshot()
        hard = log.hard_state
        self._startup_commit = hard.commit
        if self._sm is not None:
            sm_applied = self._sm.open(store)
            # Never serve from behind the log's snapshot: finish an install a
            # crash interrupted (or refuse to start, StateBehindLog).
            sm_applied = await asyncio.get_running_loop().run_in_executor(
                self._executor, finish_install, self._sm, log, cfg.snapshot_dir, sm_applied
            )
        else:
            sm_applied = snap.index
        applied = max(snap.index, min(sm_applied, hard.commit, log.last_index()))
        applied_term, conf = recover_position(log, sm_applied)
        addresses = load_addresses(store, cfg)
        book = AttributeBook(store.tree(ATTRIBUTES_TREE))
        self._peers = Peers(
            cfg.id,
            addresses,
            self._transport.client_pool(
                cluster_id=self.cluster_id, tls=cfg.dial_tls, max_message_bytes=16 << 20
            ),
            self._deliver,
            self._unreachable,
            cluster_id=self.cluster_id,
            metrics=self.metrics,
            on_error=self._peer_error,
            secure=cfg.dial_tls is not None,
            attributes=book,
            client_fallback=not cfg.separate_peer_port,
        )
        self._applier = Applier(
            self._sm,
            self._executor,
            self._proposals,
            applied=max(sm_applied, snap.index),
            applied_term=applied_term,
            conf=conf,
            on_conf=self._on_conf_applied,
            on_applied=self._on_applied,
            apply_duration=self.metrics.apply,
            on_attributes=self._apply_attributes,
        )
        self._last_compact = snap.index
        raft = Raft(
            Config(
                id=cfg.id,
                election_tick=cfg.election_ticks,
                heartbeat_tick=cfg.heartbeat_ticks,
                max_size_per_msg=cfg.max_batch_bytes,
                max_entries_per_msg=cfg.max_entries_per_msg,
                max_inflight_msgs=cfg.max_inflight_msgs,
                pre_vote=cfg.pre_vote,
                check_quorum=cfg.check_quorum,
                applied=applied,
                max_proposal_bytes=cfg.max_proposal_bytes,
            ),
            log,
            self._rng or random.Random(),
        )
        self._driver = Driver(
            node_id=cfg.id,
            raft=raft,
            log=log,
            applier=self._applier,
            peers=self._peers,
            executor=self._executor,
            cluster_id=self.cluster_id,
            tick_interval=cfg.tick_interval,
            witness=cfg.is_witness,
            proposals=self._proposals,
            on_addresses=self._learn_addresses,
            parallel_append=cfg.parallel_append,
            metrics=self.metrics,
            alerts=self.alerts,
            install_dir=None if cfg.is_witness else cfg.snapshot_dir,
        )
        self._forwarder = Forwarder(
            cfg.id,
            self._driver,
            self._peers,
            election_wait=2 * cfg.election_ticks * cfg.tick_interval,
        )
        self._register_client_services()
        await self._serve(cfg)
        self._applier.on_failed = self._driver.on_failed = self._fatal
        self._applier.start()
        self._driver.start()
        self._publisher = Publisher(
            self,
            own_attributes(
                cfg.name or f"nexus-{cfg.id}", self.client_endpoint(), cfg.tls is not None
            ),
            book,
            timeout=max(1.0, 4 * cfg.election_ticks * cfg.tick_interval),
        )
        self._publisher.start()
        self._standing = Standing(cfg, self._record, self._driver, self._peers, store, log,
                                  self._halt_with)  # fmt: skip
        self._standing.start()
        await self._observe.start(cfg.metrics_listen)
        assert self._server is not None and self._peer_server is not None
        _log.info(
            "node %d started on %s%s (term %d, commit %d, applied %d, last %d)%s",
            cfg.id,
            self._server.endpoint,
            f", peers on {self._peer_server.endpoint}" if cfg.separate_peer_port else "",
            hard.term,
            hard.commit,
            applied,
            log.last_index(),
            " as a witness" if cfg.is_witness else "",
        )

    def _register_client_services(self) -> None:
        # An application state machine may bring its own API (the KV service);
        # servicers given with add_servicer() take its place.
        if not self._servicers and isinstance(self._sm, ServesClients):
            self._servicers.extend(self._sm.client_services(self))

    async def shutdown(self) -> None:
        """Stop serving and ticking, finish applying, close everything. Idempotent:
        a call made while another is under way (e.g. a halt's) returns when that one ends."""
        if self._shutting_down is not None:
            await asyncio.shield(self._shutting_down)
            return
        self._closed = True
        self._shutting_down = asyncio.get_running_loop().create_future()
        try:
            await self._shut_down()
        finally:
            self._shutting_down.set_result(None)

    async def _shut_down(self) -> None:
        if self._standing is not None:
            await self._standing.stop()
        await self._observe.stop()
        if self._publisher is not None:
            await self._publisher.stop()
        if self._server is not None:
            await self._server.stop(grace=0.2)
        if self._peer_server is not None and self._peer_server is not self._server:
            await self._peer_server.stop(grace=0.2)
        await self._stopped_failing()
        if self._driver is not None:
            await self._driver.stop()
        if self._applier is not None:
            await self._applier.stop()
        self._proposals.fail_all(Unavailable("node is shutting down"))
        if self._peers is not None:
            await self._peers.close()
        if self._executor is not None and self._executor is not self._given_executor:
            self._executor.shutdown(wait=True)
        if self._sm is not None and self._store is not None:
            self._sm.close()
        if self._store is not None:
            self._store.close()
        _log.info("node %d stopped", self.config.id)

    async def __aenter__(self) -> RaftNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # --- internal callbacks ----------------------------------------------------------------

    def _running(self) -> Driver:
        d = self._driver
        if d is None or self._closed:
            raise Unavailable("node is not running")
        if self._failure is not None:
            raise Unavailable(self._failure)
        if d.failed is not None:
            raise Unavailable(f"node failed: {d.failed}")
        return d

    def _deliver(self, m: Any) -> None:
        d = self._driver
        if d is None:
            return
        # A response answers a request this node sent, but a broken or hostile
        # peer may still answer with a term no correct peer can have.
        refused = term_refusal(m.term, d.raft.term)
        if refused is not None:
            self._warn.warning(
                ("response-term", m.frm),
                "node %d: %s from %d dropped: %s",
                self.id,
                type(m).__name__,
                m.frm,
                refused[1],
            )
            return
        d.deliver(m)

    def _unreachable(self, node_id: int) -> None:
        d = self._driver
        if d is not None:
            d.unreachable(node_id)
        address = self._peers.address(node_id) if self._peers is not None else None
        leading = d is not None and d.role is Role.LEADER
        self._observe.unreachable(node_id, address, leading, self._down_after)

    def _peer_error(self, node_id: int, exc: Exception) -> None:
        if self._standing is not None:
            self._standing.peer_error(node_id, exc)
        address = self._peers.address(node_id) if self._peers is not None else None
        self._observe.peer_error(node_id, address, exc)

    def _learn_addresses(self, learned: dict[int, str]) -> None:
        peers, store = self._peers, self._store
        if peers is None or store is None:
            return
        tree = store.tree(PEERS_TREE)
        for nid, endpoint in learned.items():
            if nid in self.config.peers and nid != self.config.id:
                continue  # the operator's configuration wins
            try:
                NodeAddress(nid, endpoint)
            except (ValueError, TypeError):
                _log.warning("node %d: ignoring bad endpoint %r for %d", self.id, endpoint, nid)
                continue
            if peers.set_address(nid, endpoint):
                tree.set(str(nid).encode(), endpoint.encode(), carry=True)

    def _on_conf_applied(self, index: int, cc: ConfChange) -> None:
        _log.info(
            "node %d: configuration change applied at %d: %s %d",
            self.id,
            index,
            cc.type.name,
            cc.node_id,
        )
        if self._standing is not None:
            self._standing.conf_applied(index, cc)
        if cc.type is ConfChangeType.REMOVE:
            if cc.node_id == self.id:
                _log.warning("node %d: this node was removed from the cluster", self.id)
            elif self._peers is not None and self._store is not None:
                self._store.tree(PEERS_TREE).delete(str(cc.node_id).encode(), carry=True)
                self._peers.attributes.forget(cc.node_id)
                self._peers.spawn(self._peers.forget(cc.node_id), f"forget-{cc.node_id}")

    def _apply_attributes(self, published: list[tuple[int, MemberAttributes]]) -> None:
        assert self._peers is not None
        for member, attrs in published:
            if self._peers.attributes.set(member, attrs):
                _log.info(
                    "node %d: member %d is %r, clients at %s",
                    self.id,
                    member,
                    attrs.name,
                    ", ".join(attrs.client_urls) or "no published URL",
                )

    def _on_applied(self, applied: int) -> None:
        cfg = self.config
        if applied - self._last_compact < cfg.snapshot_every:
            return
        self._last_compact = applied
        target = applied - cfg.keep_entries
        d = self._driver
        if target > 0 and d is not None and not self._closed and d.failed is None:
            d.submit(lambda: d.compact(target))

    async def _serve_forward(self, request: Any) -> Any:
        """Run a follower's forwarded request here (the peer handler calls it)."""
        return await serve_forward(self, request)

    # --- observing ---------------------------------------------------------------------------

    async def backup(self) -> AsyncIterator[bytes]:
        """The bytes of a backup file of the applied state (see ``node.backup``); full members.

        One consistent state-machine snapshot, read off the event loop; the
        file's trailer carries a sha256 over everything.
        """
        self._running()
        if self._sm is None or self._applier is None or self._executor is None:
            raise Unavailable("a witness holds no data to back up")
        source, meta = await self._applier.take_snapshot()
        info = new_meta(
            meta.index,
            meta.term,
            cluster_id=self.cluster_id,
            members=dict(self._peers.addresses) if self._peers is not None else {},
            state_machine=type(self._sm).__name__,
            member_id=self.id,
        )
        try:
            async for piece in encode_backup_async(info, stream_chunks(source, self._executor)):
                yield piece
        finally:
            source.close()

    @property
    def proposals_pending(self) -> int:
        """Proposals waiting for their result."""
        return len(self._proposals)

    @property
    def proposals_failed(self) -> int:
        """Proposals that ended in an error so far."""
        return self._proposals.failed

    @property
    def metrics_registry(self) -> Any:
        """The node's ``prometheus_client.CollectorRegistry`` (register more collectors here)."""
        return self._observe.registry

    @property
    def metrics_port(self) -> int | None:
        """The bound port of the metrics endpoint (None without ``metrics_listen``)."""
        return self._observe.metrics_port

    def status(self) -> NodeStatus:
        """Role, term, leader, log positions and the members as this node sees them.

        Also this node's health view: when each member last answered it, how
        far each lags (leader only), what is wrong (``errors``), the data
        directory's size and whether it is ready (see ``NodeStatus``).
        """
        d = self._running()
        assert self._applier is not None and self._log_store is not None
        assert self._peers is not None
        return self._observe.describe(
            d.raft.status(),
            applied=self._applier.applied,
            snapshot_index=self._log_store.snapshot().index,
            addresses=self._peers.addresses,
            attributes=self._peers.attributes.all(),
            leader_address=self.leader_address,
            config=self.config,
            startup_commit=self._startup_commit,
            apply_failed=self._applier.failed,
            down_after=self._down_after,
        )
