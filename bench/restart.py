"""Restart of a node holding N keys / log entries: where the time to "serving" goes.

Filling a million keys through a cluster takes ~13 minutes, so this script
writes node 1's data directory of a 3-node configuration directly, with the
node's own layout: the initial configuration entries (``bootstrap_log``),
then N put commands saved with ``LogStore.save`` in large batches and applied
with ``KVStateMachine.apply_batch`` (so ``kv.data`` holds N keys, the applied
index is N + 3), then compacted the way a node with the default
``snapshot_every``/``keep_entries`` would have (``--no-compact`` keeps all N
entries in the log: the worst case for anything that scans the log).

Then, ``--runs`` times (the spawned node runs alone: no leader, so it serves
status and serializable reads as a follower):

- **process**: spawn ``python -m nexus_raft.cli.node`` (through a tiny
  wrapper that stamps the wall clock) and time spawn -> interpreter up ->
  imports done -> ``RaftNode.start()`` returned -> first ``Status`` answer
  (applied restored) -> first serializable ``Get`` of the last key; then the
  RSS of the node holding the N keys. Killed with SIGKILL, as in the
  cluster bench.
- **in-process**: cProfile of ``RaftNode.start()`` (imports done first),
  reporting the cumulative time of each step of the node's open path.

Baseline in the same run: the raw LevelDB open (``plyvel.DB``) of the same
directory, the floor any store-backed start-up pays (WAL replay included).

    .venv/bin/python bench/restart.py --entries 1000000 [--runs 3] [--keep DIR]
        [--no-compact] [--profile-top 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Child mode: the node process. Only the standard library is imported before
# the first stamp, so the stamps split interpreter start-up from our imports.
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    _T_UP = time.time()

    def _stamp(name: str, at: float | None = None) -> None:
        print(f"STAMP {name} {time.time() if at is None else at:.6f}", file=sys.stderr, flush=True)

    _stamp("up", _T_UP)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import nexus_raft.cli.node as _cli
    from nexus_raft.consensus.node.node import RaftNode as _RaftNode

    _stamp("imported")
    _orig_start = _RaftNode.start

    async def _stamped_start(self: Any) -> None:
        _stamp("start-called")
        await _orig_start(self)
        _stamp("started")

    _RaftNode.start = _stamped_start  # type: ignore[method-assign]
    sys.exit(_cli.main(sys.argv[2:]))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

VALUE = b"v" * 256
SNAPSHOT_EVERY = 10_000  # NodeConfig defaults, as the cluster bench runs
KEEP_ENTRIES = 5_000


def _key(k: int) -> bytes:
    return b"big/%09d" % k


def build(data_dir: Path, peers: dict[int, str], entries: int, compact: bool) -> float:
    """Write node 1's store with ``entries`` puts (one per log entry); returns seconds."""
    from nexus_raft.consensus.core.messages import NONE, Entry, EntryType, HardState
    from nexus_raft.consensus.log.store import LogStore
    from nexus_raft.consensus.node.boot import bootstrap_log
    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.kv.commands import KVCommand
    from nexus_raft.kv.state_machine import KVStateMachine
    from nexus_raft.storage import Store

    t0 = time.monotonic()
    cfg = NodeConfig(id=1, listen=peers[1], peers=peers, data_dir=data_dir)
    store = Store.open(cfg.store_path, sync=False)
    try:
        log = LogStore(store)
        bootstrap_log(log, cfg)
        sm = KVStateMachine()
        sm.open(store)
        first = log.last_index() + 1
        chunk = 20_000
        for lo in range(0, entries, chunk):
            ents = []
            for k in range(lo, min(entries, lo + chunk)):
                data = KVCommand.put(_key(k), VALUE).encode()
                ents.append(Entry(first + k, 1, EntryType.NORMAL, data))
            last = ents[-1].index
            log.save(HardState(term=1, vote=NONE, commit=last), ents, None)
            sm.apply_batch([(e.index, e.data) for e in ents if e.data is not None])
            if compact and last >= KEEP_ENTRIES + SNAPSHOT_EVERY:
                # What Driver.compact does every snapshot_every applied entries.
                target = last - KEEP_ENTRIES
                if target - log.snapshot().index >= SNAPSHOT_EVERY:
                    log.create_snapshot(target)
            if (lo // chunk) % 10 == 9:
                print(f"  ... {lo + chunk:,} entries ({time.monotonic() - t0:.0f} s)", flush=True)
        sm.close()
    finally:
        store.close()
    return time.monotonic() - t0


async def _poll_serving(
    endpoint: str, cluster_id: str, applied: int, key: bytes, deadline: float
) -> tuple[float, float]:
    """Wall-clock times of the first Status showing ``applied`` and the first serializable Get."""
    import asyncio

    import grpc

    from nexus_raft.kv.wire import kv_pb2, kv_pb2_grpc

    t_status = 0.0
    # Short reconnect backoff: the first connection attempts are refused (the
    # node is not listening yet), and the default backoff (1 s, growing) would
    # be measured as start-up time.
    options = [
        ("grpc.initial_reconnect_backoff_ms", 10),
        ("grpc.min_reconnect_backoff_ms", 10),
        ("grpc.max_reconnect_backoff_ms", 20),
    ]
    async with grpc.aio.insecure_channel(endpoint, options=options) as ch:
        stub = kv_pb2_grpc.KVStub(ch)
        while time.time() < deadline:
            try:
                if not t_status:
                    st = await stub.Status(kv_pb2.StatusRequest(cluster_id=cluster_id), timeout=0.5)
                    if st.applied >= applied:
                        t_status = time.time()
                    continue
                got = await stub.Get(
                    kv_pb2.GetRequest(cluster_id=cluster_id, key=key, serializable=True),
                    timeout=0.5,
                )
                if got.found:
                    return t_status, time.time()
                raise RuntimeError(f"key {key!r} not found after restart: {got.error}")
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.005)
    raise TimeoutError("the node did not serve within the deadline")


def run_process(
    data_dir: Path, peers: dict[int, str], applied: int, key: bytes, log_path: Path
) -> dict[str, float]:
    """Spawn the node once, time its stages, read its RSS, SIGKILL it."""
    import asyncio

    from _cluster_common import rss_mb

    from nexus_raft.consensus.node.config import derive_cluster_id

    peer_arg = ",".join(f"{i}={e}" for i, e in sorted(peers.items()))
    argv = [
        sys.executable,
        __file__,
        "--child",
        "--id",
        "1",
        "--listen",
        peers[1],
        "--peers",
        peer_arg,
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w", encoding="utf-8") as err:
        t_spawn = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            t_status, t_get = asyncio.run(
                _poll_serving(peers[1], derive_cluster_id(peers), applied, key, time.time() + 60)
            )
            rss = rss_mb([proc.pid])[0]
            cpu = _cpu_seconds(proc.pid)
        finally:
            proc.kill()
            proc.wait()
    stamps: dict[str, float] = {}
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("STAMP "):
            _, name, at = line.split()
            stamps[name] = float(at)
    missing = {"up", "imported", "started"} - set(stamps)
    if missing:
        raise RuntimeError(f"node output lacks stamps {sorted(missing)}: see {log_path}")
    return {
        "spawn -> interpreter up (s)": stamps["up"] - t_spawn,
        "spawn -> imports done (s)": stamps["imported"] - t_spawn,
        "spawn -> RaftNode.start() called (s)": stamps["start-called"] - t_spawn,
        "spawn -> RaftNode.start() returned (s)": stamps["started"] - t_spawn,
        "spawn -> Status answers, applied restored (s)": t_status - t_spawn,
        "spawn -> serializable Get answers (s)": t_get - t_spawn,
        "  RaftNode.start() alone (s)": stamps["started"] - stamps["start-called"],
        "  node CPU time until serving (s)": cpu,
        "RSS of the node holding the keys (MiB)": rss,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Functions of the open path whose cumulative time the profile reports, in order.
_STEPS = [
    ("nexus_raft/storage/store.py", "open", "Store.open (LevelDB open + WAL replay)"),
    ("nexus_raft/consensus/log/store.py", "__init__", "LogStore open"),
    ("nexus_raft/kv/state_machine.py", "open", "KVStateMachine.open"),
    ("nexus_raft/consensus/node/boot.py", "recover_position", "recover_position"),
    ("nexus_raft/consensus/node/boot.py", "load_addresses", "load_addresses"),
    ("nexus_raft/consensus/core/raft.py", "__init__", "Raft core init"),
    ("nexus_raft/consensus/node/driver.py", "__init__", "Driver init"),
    ("nexus_raft/transport/server.py", "start", "RaftServer.start (gRPC bind)"),
    ("nexus_raft/consensus/node/node.py", "start", "RaftNode.start total"),
]


def run_inprocess(data_dir: Path, peers: dict[int, str], top: int) -> list[tuple[str, float]]:
    """cProfile one in-process ``RaftNode.start()``; cumulative seconds per step."""
    import asyncio
    import cProfile
    import pstats

    from nexus_raft.consensus.node.config import NodeConfig
    from nexus_raft.consensus.node.node import RaftNode
    from nexus_raft.kv.service.kv import KVService
    from nexus_raft.kv.state_machine import KVStateMachine

    cfg = NodeConfig(id=1, listen=peers[1], peers=peers, data_dir=data_dir)

    async def once(prof: cProfile.Profile) -> float:
        node = RaftNode(cfg, KVStateMachine())
        node.add_servicer(KVService(node, cluster_id=cfg.effective_cluster_id).register)
        t0 = time.perf_counter()
        prof.enable()
        try:
            await node.start()
        finally:
            prof.disable()
            took = time.perf_counter() - t0
            await node.shutdown()
        return took

    prof = cProfile.Profile()
    wall = asyncio.run(once(prof))
    stats = pstats.Stats(prof)
    found: dict[tuple[str, str], float] = {}
    for (path, _line, func), row in stats.stats.items():  # type: ignore[attr-defined]
        for suffix, name, _label in _STEPS:
            if func == name and path.endswith(suffix):
                found[(suffix, name)] = found.get((suffix, name), 0.0) + row[3]
    rows = [(label, found.get((s, n), float("nan"))) for s, n, label in _STEPS]
    rows.append(("RaftNode.start wall (profiled)", wall))
    if top:
        stats.sort_stats("cumulative").print_stats(top)
    return rows


def raw_leveldb_open(data_dir: Path) -> float:
    """Seconds to open (and close) the store directory with plain plyvel."""
    import plyvel

    t0 = time.perf_counter()
    db = plyvel.DB(str(data_dir / "store"))
    took = time.perf_counter() - t0
    db.close()
    return took


def main() -> int:
    """Build the data directory (or reuse ``--keep``), then measure."""
    from _cluster_common import free_ports, print_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-compact", action="store_true", help="keep all entries in the log")
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this directory")
    parser.add_argument("--profile-top", type=int, default=0, help="print the N top profile rows")
    args = parser.parse_args()
    if args.entries <= 0 or args.runs <= 0:
        parser.error("--entries and --runs must be positive")

    import shutil
    import tempfile

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-restart-"))
    # Built once into `pristine`; every measurement starts from a fresh copy
    # of it, so each one sees the state a killed node leaves behind (an
    # unreplayed LevelDB log, deletion markers not compacted yet) and the
    # runs do not warm each other up through LevelDB's own compactions.
    pristine = root / f"pristine-{args.entries}-{'full' if args.no_compact else 'compacted'}"
    data_dir = root / "n1"
    ports = free_ports(3)
    peers = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(ports)}

    def fresh() -> Path:
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(pristine, data_dir)
        return data_dir

    try:
        if not (pristine / "complete").exists():
            shutil.rmtree(pristine, ignore_errors=True)
            print(f"building {args.entries:,} entries/keys in {pristine} ...", flush=True)
            secs = build(pristine, peers, args.entries, not args.no_compact)
            print(f"built in {secs:.1f} s", flush=True)
            (pristine / "complete").touch()
        applied = args.entries + 3  # three configuration entries come first
        key = _key(args.entries - 1)
        size = sum(f.stat().st_size for f in (pristine / "store").iterdir()) / (1 << 20)
        rows: list[list[str]] = [["store size on disk (MiB)", f"{size:.0f}"]]
        raw = [raw_leveldb_open(fresh()) for _ in range(args.runs)]
        rows.append(["baseline: plain plyvel open (s)", " / ".join(f"{t:.3f}" for t in raw)])
        runs = [
            run_process(fresh(), peers, applied, key, root / f"node-run{i}.log")
            for i in range(args.runs)
        ]
        for name in runs[0]:
            fmt = "{:.0f}" if name.startswith("RSS") else "{:.3f}"
            rows.append([name, " / ".join(fmt.format(r[name]) for r in runs)])
        steps = run_inprocess(fresh(), peers, args.profile_top)
        for label, secs in steps:
            rows.append([f"in-process: {label} (s)", f"{secs:.3f}"])
        load = os.getloadavg()[0]
        print_table(
            ["measurement", f"runs ({args.runs})"],
            rows,
            title=f"restart with {args.entries:,} entries/keys "
            f"({'all in the log' if args.no_compact else 'log compacted as by default'}), "
            f"load average {load:.1f}",
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
