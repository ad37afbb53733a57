"""SimulatedDisk: an in-memory storage backend that models what a crash keeps.

For deterministic whole-node simulation (``tests/sim_node``): ``Store.open(path,
backend=disk)`` runs the real Store, Tree, Batch and Snapshot code on it.
Production never selects it (``Store.open`` defaults to LevelDB).

The durability model is LevelDB's, as far as a crash can tell:

- every write (``put``, ``delete``, one write batch) is atomic, applied in
  order, and visible to readers at once;
- a write becomes *durable* (survives a power loss) when a synced write
  follows it in the same write-ahead-log generation, or when the memtable of
  its generation has been flushed to a table;
- the log rotates when the current generation holds more than
  ``write_buffer_bytes``: the write that finds it full starts a new
  generation, and the old one is flushed in the background (here: after a
  random number of later writes). Until then a synced write does NOT make the
  old generation durable: LevelDB closes the old log file without an fsync.
  Only one old generation may wait (LevelDB stalls the writer otherwise);
- a process crash (kill -9) keeps every write, since the OS holds them; the
  next open recovers them and makes them durable (LevelDB rewrites a
  recovered log into a synced table). A power loss keeps only durable writes.

Crash injection: :meth:`SimulatedDisk.arm` makes the disk crash *before*
a chosen write (the n-th one, or the n-th one for which a predicate names a
situation), so a member can be stopped between any two storage operations:
inside a Ready's save, a snapshot restore, a compaction or a ``drop_tree``.
The crash raises :class:`SimulatedCrash` (a ``BaseException``, so no
``except Exception`` recovery path above can swallow it: the process is dead
at that point), and every handle opened before it fails from then on.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from nexus_raft.errors import StorageError, StoreLockedError
from nexus_raft.storage._simread import Reader as _Reader

__all__ = ["CrashReport", "SimulatedCrash", "SimulatedDisk"]

Op = tuple[bytes, "bytes | None"]
WriteObserver = Callable[[str, Sequence[Op], bool], None]
"""Called after each write with (path, operations, synced)."""


class SimulatedCrash(BaseException):
    """The simulated process died at a storage operation (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class CrashReport:
    """What a crash did: writes done before it, power loss, unsynced writes lost, why."""

    writes: int
    power_loss: bool
    lost: int
    label: str
    holes: int = 0  # watched writes kept after a lost one (see SimulatedDisk.watched)


class _Write:
    __slots__ = ("durable", "gen", "ops")

    def __init__(self, gen: int, ops: Sequence[Op]) -> None:
        self.gen = gen
        self.ops = ops
        self.durable = False


def _apply(data: dict[bytes, bytes], ops: Sequence[Op]) -> None:
    for key, value in ops:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value


class _DBFile:
    """One database directory: what readers see, what is durable, what is pending.

    Invariants: ``visible == base + every pending write, in order``;
    ``pending[0]`` (if any) is not durable; ``keys`` is ``sorted(visible)``.
    ``frozen`` means iterators or snapshots share ``visible``/``keys``, so
    the next write copies them first (copy on write).
    """

    __slots__ = ("base", "flush_at", "frozen", "gen", "gen_bytes", "keys", "open", "pending",
                 "visible")

    def __init__(self) -> None:
        self.visible: dict[bytes, bytes] = {}
        self.keys: list[bytes] = []
        self.frozen = False
        self.base: dict[bytes, bytes] = {}
        self.pending: deque[_Write] = deque()
        self.gen = 0
        self.gen_bytes = 0
        self.flush_at: int | None = None  # disk write count at which gen - 1 is flushed
        self.open = False

    def freeze(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        self.frozen = True
        return self.visible, self.keys

    def apply(self, ops: Sequence[Op]) -> None:
        if self.frozen:
            self.visible = dict(self.visible)
            self.keys = list(self.keys)
            self.frozen = False
        visible, keys = self.visible, self.keys
        for key, value in ops:
            if value is None:
                if key in visible:
                    del visible[key]
                    del keys[bisect.bisect_left(keys, key)]
            else:
                if key not in visible:
                    if not keys or key > keys[-1]:
                        keys.append(key)
                    else:
                        bisect.insort(keys, key)
                visible[key] = value

    def sync_current(self) -> None:
        """A synced write: everything of the current generation is durable."""
        gen = self.gen
        for w in reversed(self.pending):
            if w.gen != gen or w.durable:
                break
            w.durable = True

    def flush_old(self) -> None:
        """The old generation's memtable reached a table: its writes are durable."""
        for w in self.pending:
            if w.gen < self.gen:
                w.durable = True
        self.flush_at = None

    def fold(self) -> None:
        pending, base = self.pending, self.base
        while pending and pending[0].durable:
            _apply(base, pending.popleft().ops)

    def recover(self) -> None:
        """Reopen after a crash or close: every write the OS kept becomes durable."""
        for w in self.pending:
            w.durable = True
        self.fold()
        self.flush_at = None
        self.gen_bytes = 0

    def holes(self, watched: Callable[[bytes], bool]) -> int:
        """Writes touching ``watched`` keys that a power loss now would keep *after*
        losing an earlier one whose effect no kept write restores (what survives
        is not a prefix).

        Judged on what survives, not on the way there: a lost write whose keys
        a later kept write writes again (a carried write, see
        ``Store.apply_batch``) leaves no hole, even when another kept write
        lies between the two. Counted: the kept writes after the first lost
        write with a key that stays lost.
        """
        lost_at: dict[bytes, int] = {}  # key -> position of a lost write not rewritten since
        kept: list[int] = []  # positions of kept watched writes
        for pos, w in enumerate(self.pending):
            keys = {k for k, _ in w.ops if watched(k)}
            if not keys:
                continue
            if not w.durable:
                for k in keys:
                    lost_at.setdefault(k, pos)
            else:
                kept.append(pos)
                for k in keys:
                    lost_at.pop(k, None)
        if not lost_at:
            return 0
        first = min(lost_at.values())
        return sum(1 for pos in kept if pos > first)

    def lose_unsynced(self) -> int:
        """Power loss: keep only durable writes; returns how many writes were lost."""
        lost = sum(1 for w in self.pending if not w.durable)
        # What survives: the base, then the durable writes in their order; that
        # is also the new base (nothing is pending any more).
        for w in self.pending:
            if w.durable:
                _apply(self.base, w.ops)
        if lost:
            self.visible = dict(self.base)
            self.keys = sorted(self.visible)
            self.frozen = False
        self.pending.clear()
        self.flush_at = None
        self.gen_bytes = 0
        return lost


class SimulatedDisk:
    """One machine's disk for simulated members (a ``StorageBackend``).

    ``rng`` decides when a rotated log generation is flushed (``flush_after``
    writes later, inclusive range); ``write_buffer_bytes`` is LevelDB's
    memtable size (default 4 MiB like LevelDB; simulations shrink it so that
    rotations happen). ``observer`` sees every write; ``on_crash`` is called
    when an armed crash fires, before :class:`SimulatedCrash` is raised.
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        write_buffer_bytes: int = 4 << 20,
        flush_after: tuple[int, int] = (1, 50),
    ) -> None:
        self._rng = rng or random.Random(0)
        self.write_buffer_bytes = write_buffer_bytes
        self.flush_after = flush_after
        self._files: dict[str, _DBFile] = {}
        self.epoch = 0  # handles of an older epoch belong to a dead process
        self.dead = False
        self.writes = 0
        self.rotations = 0
        self.lost_writes = 0
        self.last_holes = 0  # holes of the last power_fail()
        self.observer: WriteObserver | None = None
        self.on_crash: Callable[[CrashReport], None] | None = None
        # Keys whose writes must be lost as a prefix (e.g. a state machine's):
        # a power loss that keeps a later one after losing an earlier one is
        # counted in ``CrashReport.holes``.
        self.watched: Callable[[bytes], bool] | None = None
        self._arm_skip = -1  # < 0: not armed
        self._arm_when: Callable[[], str | None] | None = None
        self._arm_label = ""
        self._arm_power = False

    # --- StorageBackend -------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """Whether a database was created at ``path``."""
        return path in self._files

    def open(self, path: str, *, create: bool) -> SimDB:
        """A handle on the database at ``path`` (recovering what a crash left)."""
        if self.dead:
            raise SimulatedCrash("open on a crashed disk: reboot() it first")
        f = self._files.get(path)
        if f is None:
            if not create:
                raise StorageError(f"no store at {path}")
            f = self._files[path] = _DBFile()
        if f.open:
            raise StoreLockedError(f"store is already open ({path}): lock held")
        f.recover()
        f.open = True
        return SimDB(self, f, path, b"")

    # --- faults -------------------------------------------------------------------------

    def arm(
        self,
        *,
        after: int = 0,
        when: Callable[[], str | None] | None = None,
        label: str = "armed",
        power_loss: bool = False,
    ) -> None:
        """Crash before a write: skip ``after`` matching writes, crash at the next.

        A write matches when ``when`` is None or ``when()`` returns a label
        (which then names the crash); ``power_loss`` also drops unsynced writes.
        """
        self._arm_skip = after
        self._arm_when = when
        self._arm_label = label
        self._arm_power = power_loss

    def disarm(self) -> None:
        """Forget an armed crash."""
        self._arm_skip = -1
        self._arm_when = None

    @property
    def armed(self) -> bool:
        """Whether a crash is armed."""
        return self._arm_skip >= 0

    def crash(self, *, power_loss: bool, label: str = "killed") -> CrashReport:
        """The process using this disk dies now (and the power with it if ``power_loss``)."""
        self.dead = True
        self.epoch += 1
        lost = 0
        holes = 0
        for f in self._files.values():
            f.open = False
            if power_loss:
                if self.watched is not None:
                    holes += f.holes(self.watched)
                lost += f.lose_unsynced()
        self.lost_writes += lost
        self.disarm()
        return CrashReport(self.writes, power_loss, lost, label, holes)

    def power_fail(self) -> int:
        """The power fails while the process is already down: unsynced writes go too."""
        watched = self.watched
        self.last_holes = sum(f.holes(watched) for f in self._files.values()) if watched else 0
        lost = sum(f.lose_unsynced() for f in self._files.values())
        self.lost_writes += lost
        return lost

    def reboot(self) -> None:
        """A new process may open the databases again."""
        self.dead = False

    def unsynced(self) -> int:
        """Writes a power loss would lose right now."""
        return sum(1 for f in self._files.values() for w in f.pending if not w.durable)

    # --- internals ----------------------------------------------------------------------

    def _check(self, epoch: int) -> None:
        if epoch != self.epoch or self.dead:
            raise SimulatedCrash("storage used by a crashed process")

    def _maybe_crash(self) -> None:
        """Fire an armed crash if this operation is the chosen one."""
        if self._arm_skip < 0:
            return
        label = self._arm_label if self._arm_when is None else self._arm_when()
        if label is None:
            return
        if self._arm_skip > 0:
            self._arm_skip -= 1
            return
        report = self.crash(power_loss=self._arm_power, label=label)
        if self.on_crash is not None:
            self.on_crash(report)
        raise SimulatedCrash(label)

    def _write(self, h: SimDB, ops: Sequence[Op], sync: bool) -> None:
        h._alive()
        self._maybe_crash()
        f = h._file
        if f.gen_bytes >= self.write_buffer_bytes:
            if f.flush_at is not None:  # LevelDB waits for the older memtable first
                f.flush_old()
            f.gen += 1
            f.gen_bytes = 0
            f.flush_at = self.writes + self._rng.randint(*self.flush_after)
            self.rotations += 1
        self.writes += 1
        f.apply(ops)
        f.pending.append(_Write(f.gen, ops))
        f.gen_bytes += sum(len(k) + len(v or b"") + 8 for k, v in ops)
        if sync:
            f.sync_current()
        if f.flush_at is not None and self.writes >= f.flush_at:
            f.flush_old()
        f.fold()
        if self.observer is not None:
            self.observer(h._path, ops, sync)

    def _compact(self, h: SimDB) -> None:
        """``compact_range``: a storage operation (a crash may come before it) that
        makes every write so far durable and starts a new log generation."""
        h._alive()
        self._maybe_crash()
        f = h._file
        for w in f.pending:
            w.durable = True
        f.fold()
        f.flush_at = None
        f.gen += 1
        f.gen_bytes = 0
        if self.observer is not None:
            self.observer(h._path, (), True)

    def __repr__(self) -> str:
        state = "dead" if self.dead else "up"
        return f"<SimulatedDisk {state} writes={self.writes} files={sorted(self._files)}>"


class SimDB(_Reader):
    """A database handle with the ``plyvel.DB`` interface the Store uses."""

    def __init__(self, disk: SimulatedDisk, f: _DBFile, path: str, prefix: bytes,
                 root: SimDB | None = None) -> None:
        self._disk = disk
        self._file = f
        self._path = path
        self._prefix = prefix
        self._epoch = disk.epoch
        self._root = root
        self._closed = False

    def _alive(self) -> None:
        root = self._root or self
        if root._closed:
            raise RuntimeError("Database is closed")
        self._disk._check(root._epoch)

    def _peek(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        self._alive()
        return self._file.visible, self._file.keys

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        return self._file.freeze()

    @property
    def closed(self) -> bool:
        """Whether the handle was closed."""
        return (self._root or self)._closed

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        """Set ``key``."""
        self._disk._write(self._root or self, ((self._prefix + key, value),), sync)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        """Remove ``key``."""
        self._disk._write(self._root or self, ((self._prefix + key, None),), sync)

    def write_batch(self, *, sync: bool = False, transaction: bool = False) -> SimWriteBatch:
        """A batch of writes applied atomically by ``write()`` (or at the end of a ``with``)."""
        return SimWriteBatch(self._root or self, self._prefix, sync, transaction)

    def prefixed_db(self, prefix: bytes) -> SimDB:
        """A view whose keys are relative to ``prefix``."""
        return SimDB(self._disk, self._file, self._path, self._prefix + prefix, self._root or self)

    def snapshot(self) -> SimSnapshot:
        """A consistent read-only view as of now."""
        self._alive()
        data, keys = self._file.freeze()
        return SimSnapshot(self._root or self, data, keys)

    def compact_range(self, start: bytes | None = None, stop: bytes | None = None) -> None:
        """LevelDB writes the memtable to a synced table first: every write so far is durable."""
        self._disk._compact(self._root or self)

    def close(self) -> None:
        """Close the handle (the database stays on the disk); idempotent."""
        root = self._root or self
        if not root._closed:
            root._closed = True
            if root._epoch == self._disk.epoch:
                self._file.open = False


class SimSnapshot(_Reader):
    """A frozen view of a :class:`SimDB` (``plyvel`` snapshot interface)."""

    def __init__(self, db: SimDB, data: dict[bytes, bytes], keys: list[bytes]) -> None:
        self._db = db
        self._data = data
        self._keys = keys
        self._prefix = b""
        self._released = False

    def _alive(self) -> None:
        if self._released:
            raise RuntimeError("Snapshot is closed")
        self._db._alive()

    def _peek(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        self._alive()
        return self._data, self._keys

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        return self._data, self._keys

    def close(self) -> None:
        """Release the view; idempotent."""
        self._released = True


class SimWriteBatch:
    """A plyvel-style write batch (``put``/``delete``, then ``write()``)."""

    def __init__(self, db: SimDB, prefix: bytes, sync: bool, transaction: bool) -> None:
        self._db = db
        self._prefix = prefix
        self._sync = sync
        self._transaction = transaction
        self._ops: list[Op] = []

    def put(self, key: bytes, value: bytes) -> None:
        """Add ``key = value``."""
        self._ops.append((self._prefix + key, value))

    def delete(self, key: bytes) -> None:
        """Add the removal of ``key``."""
        self._ops.append((self._prefix + key, None))

    def clear(self) -> None:
        """Forget the operations added so far."""
        self._ops = []

    def write(self) -> None:
        """Apply the batch atomically."""
        self._db._disk._write(self._db, tuple(self._ops), self._sync)

    def __enter__(self) -> SimWriteBatch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # plyvel writes the batch even when the block raised, unless transaction=True.
        if exc_type is None or not self._transaction:
            self.write()

