"""One RaftNode in its own process that dies at a chosen step of a snapshot install.

    python -m tests.consensus.node.crash_member CONFIG_JSON

CONFIG_JSON: ``{"id", "listen", "peers", "data_dir", "cluster_id", "options", "point"}``
(``options``: extra NodeConfig fields). It dies with ``os._exit(CRASHED)``:
the process ends on the spot, as with kill -9 (no cleanup, no flush; what was
written to LevelDB stays in the OS, as after a real process crash). Points:

- ``restore-midway``: the state machine's restore dies after its second write batch;
- ``restore-raises``: the restore raises part-way (an exception, not a crash); the
  node stops serving on its own and the process prints its one-line reason
  last and exits 1, as nexus-node does;
- ``after-restore``: dies as the state machine's restore returns;
- ``before-log-save``: dies just before the log saves the snapshot's record;
- ``after-log-save``: dies just after the log saved it.

The patches are applied here, in the child, to the library's own functions;
the library has no test hooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from nexus_raft.consensus.log.store import LogStore
from nexus_raft.consensus.node.config import NodeConfig
from nexus_raft.consensus.node.node import RaftNode
from nexus_raft.kv import snapshot as kv_snapshot
from nexus_raft.kv.state_machine import KVStateMachine
from nexus_raft.storage import Store

CRASHED = 86
POINTS = ("restore-midway", "restore-raises", "after-restore", "before-log-save", "after-log-save")


def die(point: str) -> None:
    print(f"crashing at {point}", file=sys.stderr, flush=True)
    os._exit(CRASHED)


def arm(point: str) -> None:
    if point not in POINTS:
        raise SystemExit(f"unknown crash point {point!r}")
    # Small restore batches, so that "midway" leaves part of the data written.
    kv_snapshot._RESTORE_BATCH_BYTES = 16 << 10
    if point == "restore-midway":
        load = KVStateMachine._load_stream
        apply_batch = Store.apply_batch
        state = {"restoring": False, "batches": 0}

        def counting_apply(self: Store, batch: Any, *args: Any, **kw: Any) -> None:
            apply_batch(self, batch, *args, **kw)
            if state["restoring"]:
                state["batches"] += 1
                if state["batches"] >= 2:
                    die(point)

        def loading(self: KVStateMachine, index: int, chunks: Iterable[bytes]) -> None:
            state["restoring"] = True
            try:
                load(self, index, chunks)
            finally:
                state["restoring"] = False

        Store.apply_batch = counting_apply  # type: ignore[method-assign]
        KVStateMachine._load_stream = loading  # type: ignore[method-assign]
    elif point == "restore-raises":
        load = KVStateMachine._load_stream

        def first_chunk_only(chunks: Iterable[bytes]) -> Iterator[bytes]:
            it = iter(chunks)
            yield next(it)
            raise OSError("injected: the snapshot file could not be read")

        def failing(self: KVStateMachine, index: int, chunks: Iterable[bytes]) -> None:
            load(self, index, first_chunk_only(chunks))

        KVStateMachine._load_stream = failing  # type: ignore[method-assign]
    elif point == "after-restore":
        restore = KVStateMachine.restore

        def restore_then_die(self: KVStateMachine, index: int, chunks: Iterable[bytes]) -> None:
            restore(self, index, chunks)
            die(point)

        KVStateMachine.restore = restore_then_die  # type: ignore[method-assign]
    else:
        save = LogStore.save

        def saving(self: LogStore, hard_state: Any, entries: Any, snapshot: Any = None) -> None:
            if snapshot is not None and snapshot.index > 0 and point == "before-log-save":
                die(point)
            save(self, hard_state, entries, snapshot)
            if snapshot is not None and snapshot.index > 0:
                die(point)

        LogStore.save = saving  # type: ignore[method-assign]


async def main(spec: dict[str, Any]) -> None:
    arm(spec["point"])
    cfg = NodeConfig(
        id=spec["id"],
        listen=spec["listen"],
        peers={int(k): v for k, v in spec["peers"].items()},
        data_dir=spec["data_dir"],
        cluster_id=spec["cluster_id"],
        **spec["options"],
    )
    node = RaftNode(cfg, KVStateMachine())
    await node.start()
    print(f"ready {node.port}", flush=True)
    try:
        # As nexus-node does: a member whose state machine or log cannot be
        # written stops serving on its own; the process then says why in one
        # line and exits 1 (#15 item 6) instead of lingering unreachable.
        failure = await node.wait_failed()
    finally:
        await node.shutdown()
    print(failure, file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="child %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(json.loads(sys.argv[1])))
