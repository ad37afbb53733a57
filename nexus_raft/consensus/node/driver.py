"""The asyncio driver of one Raft core: ticks, inbox, Ready handling, routing.

Everything that touches the core runs on the event loop, inside the driver's
one task, between Readies: callers never call the core directly, they put an
operation in the inbox (:meth:`Driver.submit`) and the task runs it. While a
Ready is being persisted (the fsync runs in an executor thread) the inbox
keeps filling, so the proposals, appends and votes that arrive meanwhile all
land in the next Ready: group commit with one fsync per Ready.

Per Ready, in this order (the persist-before-send rule):
1. a snapshot to install has its data made durable (``install-<index>.snap``);
2. snapshot, entries and hard state are saved in ONE fsync'd batch; then the
   snapshot is restored into the state machine, and its data removed once
   the restored state is durable. A crash anywhere in 1-2 leaves the old log
   and the old state (before the save), or the new log and its data on disk,
   from which the next start finishes the restore (``boot.finish_install``):
   the state machine never serves from behind the log's snapshot;
3. messages are sent (responses complete the requests that asked for them);
   a leader's AppendRequests and Heartbeats are the one exception: they depend
   on nothing the Ready persists, so (``parallel_append``, the default) they
   leave before the save and the followers' fsyncs overlap the leader's;
4. committed entries go to the apply task, read states to their waiters;
5. ``advance()``.

A hard state whose only change is the commit index is not saved on its own
(the commit index is volatile in Raft); it rides along with the next save,
and is forced out before any compaction so the log never starts past it.

Requests from peers (the transport handler) are stepped with a future that
the core's answer completes; :mod:`~nexus_raft.consensus.node.answers` pairs
them explicitly (never by arrival order) and fails a refused or unanswered
request at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from nexus_raft.consensus.core.messages import (
    NONE,
    AppendRequest,
    AppendResponse,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    Ready,
    Role,
    SnapshotMeta,
    SnapshotRequest,
    SoftState,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from nexus_raft.consensus.core.raft import Raft
from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.alerts import Alerts
from nexus_raft.consensus.node.answers import Answers, RequestRefused
from nexus_raft.consensus.node.apply import Applier, Proposals
from nexus_raft.consensus.node.conf_addresses import conf_addresses
from nexus_raft.consensus.node.metrics import NodeMetrics
from nexus_raft.consensus.node.peers import Peers
from nexus_raft.consensus.node.send import (
    send_read_index,
    send_snapshot,
    send_timeout_now,
    send_vote,
)
from nexus_raft.consensus.node.snapshot import (
    StagedSnapshot,
    install_path,
    keep_for_install,
)
from nexus_raft.errors import NexusRaftError, NotLeader, StorageError, Unavailable

__all__ = ["Driver", "RequestRefused"]  # RequestRefused: from .answers

_log = logging.getLogger(__name__)

_RESPONSES = (VoteResponse, AppendResponse, HeartbeatResponse, ReadIndexResponse)

# Readies with at most this many entries (and no snapshot) are saved on the
# event loop thread; bigger ones in the executor, so that the loop keeps
# serving (applying, reading responses, taking proposals) during the fsync.
_INLINE_SAVE_ENTRIES = 16


def _no_answer(fut: asyncio.Future[Message], timeout: float) -> None:
    if not fut.done():
        fut.set_exception(Unavailable(f"no answer from the core within {timeout}s"))


Op = Callable[[], "Awaitable[Any] | None"]


class Driver:
    """Runs the core; see the module docstring. Created and owned by RaftNode."""

    def __init__(
        self,
        *,
        node_id: int,
        raft: Raft,
        log: LogStore,
        applier: Applier,
        peers: Peers,
        executor: Executor,
        cluster_id: str,
        tick_interval: float,
        witness: bool,
        proposals: Proposals,
        on_addresses: Callable[[dict[int, str]], None],
        parallel_append: bool = True,
        metrics: NodeMetrics | None = None,
        alerts: Alerts | None = None,
        install_dir: Path | None = None,
    ) -> None:
        self.id = node_id
        # Where a full member keeps a snapshot's data while installing it
        # (None: a witness, which installs metadata only).
        self.install_dir = install_dir
        self.raft = raft
        self.log = log
        self.applier = applier
        self.peers = peers
        self.executor = executor
        self.cluster_id = cluster_id
        self.witness = witness
        self.proposals = proposals
        self.parallel_append = parallel_append
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.alerts = alerts if alerts is not None else Alerts(node_id)
        self._tick_interval = tick_interval
        self._on_addresses = on_addresses
        self._inbox: list[Op] = []
        self._wake = asyncio.Event()
        self._ticks = 0
        self._timer: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failed: BaseException | None = None
        # Called once, with the error, when the driver stops on a failure.
        self.on_failed: Callable[[BaseException], None] | None = None
        # Peers' requests waiting for the core's answers.
        self.answers = Answers()
        # Read-index context -> the caller waiting for its read state.
        self.reads: dict[bytes, asyncio.Future[int]] = {}
        # Received snapshots waiting for the core's decision, by index.
        self.staged: dict[int, StagedSnapshot] = {}
        self._persisted: HardState = log.hard_state
        self._latest: HardState = self._persisted
        st = raft.status()
        self.role: Role = st.role
        self.leader_id: int = st.leader_id
        self.term: int = st.term
        self.leader_changed = asyncio.Event()
        self.saves = 0

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking and processing the inbox."""
        self._relearn_addresses()
        loop = asyncio.get_running_loop()
        self._next_tick = loop.time() + self._tick_interval
        self._timer = loop.call_at(self._next_tick, self._on_tick)
        self._task = loop.create_task(self._run(), name=f"raft-driver-{self.id}")

    async def stop(self) -> None:
        """Stop ticking; finish the Ready in progress; fail everything waiting. Idempotent."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 10.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # already logged by _run
                pass
        self._fail_waiting(Unavailable("node is shutting down"))

    def _on_tick(self) -> None:
        self._ticks += 1
        self._wake.set()
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_tick += self._tick_interval
        if self._next_tick <= now:  # the loop stalled: skip missed ticks, do not burst
            self._next_tick = now + self._tick_interval
        if not self._stopping:
            self._timer = loop.call_at(self._next_tick, self._on_tick)

    async def wait_leader(self, pred: Callable[[int], bool], timeout: float) -> bool:
        """Wait until ``pred(leader_id)`` holds; False if it still does not after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred(self.leader_id):
            left = deadline - loop.time()
            if left <= 0 or self._stopping or self.failed is not None:
                return False
            try:
                await asyncio.wait_for(self.leader_changed.wait(), left)
            except asyncio.TimeoutError:
                continue
        return True

    # --- the inbox ------------------------------------------------------------------------

    def submit(self, op: Op) -> None:
        """Run ``op`` on the driver task before the next Ready (it may return an awaitable)."""
        if self._stopping or self.failed is not None:
            raise Unavailable("node is not running")
        self._inbox.append(op)
        self._wake.set()

    def deliver(self, m: Message) -> None:
        """Step a message that needs no answer back to a caller (a response, TimeoutNow)."""
        if self._stopping or self.failed is not None:
            return
        self._inbox.append(lambda: self.step(m))
        self._wake.set()

    def unreachable(self, node_id: int) -> None:
        """The transport could not reach ``node_id``."""
        if self._stopping or self.failed is not None:
            return
        self._inbox.append(lambda: self.raft.report_unreachable(node_id))
        self._wake.set()

    async def request(self, m: Message, timeout: float = 10.0) -> Message:
        """Step a peer's request and wait for the core's answer to it.

        Raises :class:`~.answers.RequestRefused` at once when the core refuses
        the request or does not answer it (see :mod:`~.answers`).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Message] = loop.create_future()
        answers = self.answers
        read = m if isinstance(m, ReadIndexRequest) else None
        if read is not None:
            self.submit(lambda: answers.step_read(read, fut, self._step_quietly))
        else:
            self.submit(lambda: answers.step_request(m, fut, self._outbox, self._step_quietly))
        # A timer instead of asyncio.wait_for: this runs for every append a
        # follower receives, and wait_for costs an extra future and task switch.
        handle = loop.call_later(timeout, _no_answer, fut, timeout)
        try:
            return await fut
        finally:
            handle.cancel()
            if read is not None:
                answers.forget_read(read, fut)

    def _outbox(self) -> list[Message]:
        return self.raft.msgs

    def _step_quietly(self, m: Message) -> NexusRaftError | None:
        return self._try_step(m, quiet=True)

    def step(self, m: Message) -> None:
        """Step ``m`` now (on the driver task); a refused message is logged."""
        self._try_step(m)

    def _try_step(self, m: Message, quiet: bool = False) -> NexusRaftError | None:
        """Step ``m``; the error if the core refused it, else None.

        A refusal is logged at WARNING, or at DEBUG when ``quiet`` (a peer's
        request: the transport logs its refusal, rate-limited).
        """
        try:
            self.raft.step(m)
        except NexusRaftError as exc:
            _log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "node %d: message %s refused: %s", self.id, type(m).__name__, exc,
            )
            return exc
        finally:
            withdrawn = self.raft.withdrawn
            if withdrawn:
                self.answers.withdraw(withdrawn)
                withdrawn.clear()
        return None

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        raft = self.raft
        try:
            while not self._stopping:
                if not self._inbox and not self._ticks and not raft.has_ready():
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._ticks:
                    self._ticks = 0
                    raft.tick()
                ops, self._inbox = self._inbox, []
                for op in ops:
                    try:
                        res = op()
                        if res is not None:
                            await res
                    except Exception:
                        _log.exception("node %d: driver operation failed", self.id)
                if raft.has_ready():
                    rd = raft.ready()
                    await self._handle_ready(rd)
                    raft.advance(rd)
        except Exception as exc:
            self.failed = exc
            # A storage failure (a full disk) is said in one line by the node;
            # anything else is a bug and keeps its traceback.
            _log.critical(
                "node %d: raft driver stopped: %s",
                self.id,
                exc,
                exc_info=not isinstance(exc, StorageError),
            )
            err = Unavailable(f"raft driver failed: {exc}")
            self._fail_waiting(err)
            self.proposals.fail_all(err)
            if self.on_failed is not None:
                self.on_failed(exc)

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self._soft_state(rd.soft_state)
        loop = asyncio.get_running_loop()
        snap = rd.snapshot
        kept: Path | None = None
        if snap is not None:
            staged = self.staged.pop(snap.index, None)
            if staged is not None and staged.addresses:
                self._on_addresses(staged.addresses)
            if staged is not None and staged.attributes is not None:
                # Before the log records the snapshot: a crash in between
                # leaves the book ahead of the state, never behind it.
                self.peers.attributes.install(staged.attributes, snap.conf_state.members)
            if self.install_dir is not None:
                kept = await self._keep_for_install(snap, staged)
        hs = rd.hard_state
        if hs is not None:
            self._latest = hs
            self.term = hs.term
        persisted = self._persisted
        vote_changed = hs is not None and (hs.term != persisted.term or hs.vote != persisted.vote)
        messages = rd.messages
        sent_early = False
        if self.parallel_append and snap is None and not vote_changed and messages:
            # A leader's appends and heartbeats depend on nothing this Ready
            # persists (its term and vote are already durable, and the core
            # counts the leader's own copy toward a commit only once it is
            # persisted, after advance()), so they leave now and the
            # followers' fsyncs overlap the leader's (Raft thesis 10.2.1).
            later = []
            for m in messages:
                if isinstance(m, (AppendRequest, Heartbeat)):
                    self._send(m)
                    sent_early = True
                else:
                    later.append(m)
            messages = tuple(later)
        if rd.entries or snap is not None or vote_changed:
            save_hs = self._latest if self._latest != persisted else None
            if snap is None and len(rd.entries) <= _INLINE_SAVE_ENTRIES:
                # A small save runs on the loop thread: the fsync releases
                # the GIL (gRPC's threads keep receiving) and a round trip
                # through a worker thread costs about as much CPU as the
                # save itself, plus a scheduling delay on a busy machine.
                # Whatever arrives meanwhile is coalesced into the next Ready.
                if sent_early:
                    # The appends above are only queued: the peer senders
                    # write them when the loop runs them. Yield once so they
                    # leave before this fsync blocks the loop, else the
                    # followers' fsyncs would start after the leader's
                    # instead of overlapping it.
                    await asyncio.sleep(0)
                started = time.perf_counter()
                self.log.save(save_hs, rd.entries, snap)
            else:
                started = time.perf_counter()
                await loop.run_in_executor(self.executor, self.log.save, save_hs, rd.entries, snap)
            self._saved(time.perf_counter() - started, len(rd.entries))
            self._persisted = self._latest
            self.saves += 1
        if snap is not None:
            # The log now records the snapshot; the state machine follows.
            await self.applier.restore(snap, kept)
            if kept is not None:
                await loop.run_in_executor(self.executor, self._drop_kept, kept)
            _log.info("node %d: installed snapshot at %d (term %d)", self.id, snap.index, snap.term)
        if rd.payload_floor is not None:
            await loop.run_in_executor(self.executor, self.log.drop_payloads, rd.payload_floor)
        if rd.entries:
            self._note_conf_entries(rd.entries)
        for m in messages:
            self._send(m)
        if rd.committed_entries:
            self.applier.apply(rd.committed_entries)
        if self.witness and hs is not None:
            # The core hands a witness only its configuration entries; the
            # rest of the committed log counts as applied (for compaction).
            self.applier.mark_committed(hs.commit)
        for rs in rd.read_states:
            self._read_state(rs)
        for ctx in rd.dropped_reads:
            fut = self.reads.pop(ctx, None)
            if fut is not None and not fut.done():
                self.metrics.read_index_failures += 1
                fut.set_exception(
                    NotLeader(
                        "the read could not be confirmed by a leader; retry",
                        leader_id=self.leader_id or None,
                        leader_address=self.peers.client_address(self.leader_id),
                    )
                )

    def _saved(self, seconds: float, entries: int) -> None:
        """Account one save (its fsync) of ``entries`` entries that took ``seconds``."""
        metrics = self.metrics
        metrics.fsync.observe(seconds)
        if seconds > self.alerts.slow_fsync_seconds:
            metrics.slow_fsyncs += 1
            self.alerts.slow_fsync(seconds, entries)

    async def _keep_for_install(self, snap: SnapshotMeta, staged: StagedSnapshot | None) -> Path:
        """Make the snapshot's staged data durable under its install name; returns that path."""
        assert self.install_dir is not None
        path = staged.take() if staged is not None else None
        if path is None:
            raise NexusRaftError(f"no staged data for snapshot {snap.index}")
        kept = install_path(self.install_dir, snap.index)
        await asyncio.get_running_loop().run_in_executor(
            self.executor, keep_for_install, path, kept
        )
        return kept

    def _drop_kept(self, kept: Path) -> None:
        """The restored state is in the store: make it durable, then drop the kept data."""
        self.log.store.flush()
        kept.unlink(missing_ok=True)

    def _soft_state(self, ss: SoftState) -> None:
        old_role, old_leader = self.role, self.leader_id
        self.role, self.leader_id = ss.role, ss.leader_id
        if ss.leader_id != old_leader:
            if ss.leader_id != NONE:
                self.metrics.leader_changes += 1
                if ss.leader_id == self.id:
                    self.metrics.leader_since = time.monotonic()
            if ss.leader_id == NONE:
                _log.info("node %d: leader %d lost (term %d)", self.id, old_leader, self.raft.term)
            else:
                _log.info(
                    "node %d: leader is now %d (term %d)%s",
                    self.id,
                    ss.leader_id,
                    self.raft.term,
                    " (this node)" if ss.leader_id == self.id else "",
                )
            self.leader_changed.set()
            self.leader_changed = asyncio.Event()
        if old_role is Role.LEADER and ss.role is not Role.LEADER:
            _log.info("node %d: stepped down (now %s)", self.id, ss.role.value)

    def _relearn_addresses(self) -> None:
        """Learn again the endpoints of the log's configuration entries (at start).

        Their recording is durable only with the next synced write, so a crash
        could lose it while the entry stays (node simulator seeds 209, 759).
        """
        learned = conf_addresses(self.log.conf_entries(), forget_removed=True)
        if learned:
            self._on_addresses(learned)

    def _note_conf_entries(self, entries: tuple[Entry, ...]) -> None:
        """Learn endpoints from configuration entries as soon as they are appended.

        The core starts sending to a new member when the entry is appended
        (not when it commits), so the address must be known from then on.
        """
        learned = conf_addresses(entries, forget_removed=False)
        if learned:
            self._on_addresses(learned)

    # --- compaction ---------------------------------------------------------------------

    async def compact(self, index: int) -> int:
        """Record a snapshot at ``index`` and drop the log up to it (run as an op).

        Invariant: the log never starts past the core's applied index (the
        entries the core has handed out to apply), so ``index`` is capped by
        it; with ``applied <= committed`` and the hard state saved below,
        it never starts past the durable commit index either. etcd-io/raft
        asks the same of its application (it compacts at an index raft
        handed it). The cap matters after a restart: the commit index is
        volatile (a commit-only change rides on the next save), so the state
        machine may come back ahead of the persisted commit; the core then
        starts at that commit and hands out the entries above it again (the
        applier skips them). Compacting them first, at the state machine's
        applied index, left the core asking the log for entries it no
        longer held: the driver died with LogCompacted.
        """
        log = self.log
        index = min(index, self.raft.log.applied)
        if self.witness:
            # A witness may hold the only second copy of payloads above its
            # payload floor (a full voter is down): compacting them away would
            # leave committed entries on one member. Entries at or below the
            # floor are held by every full voter, so those may go.
            index = min(index, log.payload_floor)
        if index <= log.snapshot().index:
            return log.snapshot().index
        loop = asyncio.get_running_loop()
        if self._persisted.commit < index:
            # The log must never start past the durable commit index.
            latest = self._latest
            await loop.run_in_executor(self.executor, log.save, latest, (), None)
            self._persisted = latest
        # The state machine applies unsynced and shares the store: everything
        # it wrote up to ``index`` must be durable before the log forgets the
        # entries that could rebuild it (flush() survives LevelDB's log rotation).
        await loop.run_in_executor(self.executor, log.store.flush)
        meta = await loop.run_in_executor(self.executor, log.create_snapshot, index)
        _log.info("node %d: compacted the log up to %d", self.id, meta.index)
        return meta.index

    # --- sending ------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        if isinstance(m, _RESPONSES):
            if not self.answers.deliver(m):
                _log.debug("node %d: no requester for %s to %d", self.id, type(m).__name__, m.to)
            return
        if isinstance(m, (AppendRequest, Heartbeat)):
            self.peers.stream(m.to, m)
        elif isinstance(m, VoteRequest):
            self.peers.spawn(send_vote(self, m), f"vote-{self.id}->{m.to}")
        elif isinstance(m, SnapshotRequest):
            self.peers.spawn(send_snapshot(self, m), f"snapshot-{self.id}->{m.to}")
        elif isinstance(m, TimeoutNow):
            self.peers.spawn(send_timeout_now(self, m), f"timeout-now-{self.id}->{m.to}")
        elif isinstance(m, ReadIndexRequest):
            self.peers.spawn(send_read_index(self, m), f"read-index-{self.id}->{m.to}")
        else:  # pragma: no cover - every core message type is handled above
            _log.error("node %d: cannot send %r", self.id, m)

    # --- reads --------------------------------------------------------------------------

    def _read_state(self, rs: ReadState) -> None:
        fut = self.reads.pop(rs.context, None)
        if fut is None or fut.done():
            return
        waiter = self.applier.wait_applied(rs.index)

        def done(w: asyncio.Future[int]) -> None:
            if fut.done():
                return
            if w.cancelled():
                fut.cancel()
            elif w.exception() is not None:
                fut.set_exception(w.exception())  # type: ignore[arg-type]
            else:
                fut.set_result(w.result())

        waiter.add_done_callback(done)

    def _fail_reads(self, exc: NexusRaftError) -> None:
        reads, self.reads = self.reads, {}
        for fut in reads.values():
            if not fut.done():
                fut.set_exception(exc)

    def _fail_waiting(self, exc: NexusRaftError) -> None:
        self._fail_reads(exc)
        self.answers.fail_all(exc)
        for staged in self.staged.values():
            staged.discard()
        self.staged.clear()
