"""A replicated sqlite3 database: SQL writes go through Raft, every member applies them.

Each member keeps its own sqlite3 file. A command is one JSON-encoded SQL
statement with parameters; the state machine runs it and records the log
index in the SAME sqlite transaction, so a crash between the two is
impossible and applying is exactly-once across restarts. Reads are local
queries after ``read_index()`` (linearizable). Snapshots (for a member that
fell too far behind) are a copy of the database made with sqlite's backup
API. Run it:

    python examples/sqlite_db.py          # three members in this process, temporary dirs
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from nexus_raft.consensus import NodeConfig, RaftNode
from nexus_raft.consensus.state_machine import ChunkedSnapshot
from nexus_raft.storage import Store


def sql(statement: str, *params: object) -> bytes:
    """The command that runs ``statement`` with ``params`` on every member."""
    return json.dumps({"sql": statement, "params": list(params)}).encode()


class SQLiteStateMachine:
    """Applies SQL commands to ``path``; its ``_raft`` table holds the applied index."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db: sqlite3.Connection | None = None

    def open(self, store: Store) -> int:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS _raft (applied INTEGER NOT NULL)")
        if self.db.execute("SELECT COUNT(*) FROM _raft").fetchone()[0] == 0:
            self.db.execute("INSERT INTO _raft VALUES (0)")
        return self.applied_index()

    def applied_index(self) -> int:
        assert self.db is not None
        return int(self.db.execute("SELECT applied FROM _raft").fetchone()[0])

    def apply(self, index: int, command: bytes) -> bytes:
        return self.apply_batch([(index, command)])[0]

    def apply_batch(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        assert self.db is not None
        results = []
        applied = self.applied_index()
        self.db.execute("BEGIN")
        try:
            for index, command in items:
                if index <= applied:
                    results.append(b"")
                    continue
                cmd = json.loads(command)
                try:
                    self.db.execute("SAVEPOINT cmd")
                    cursor = self.db.execute(cmd["sql"], cmd["params"])
                    self.db.execute("RELEASE cmd")
                    results.append(json.dumps({"rows": cursor.rowcount}).encode())
                except sqlite3.Error as exc:  # a bad statement fails alone, everywhere alike
                    self.db.execute("ROLLBACK TO cmd")
                    results.append(json.dumps({"error": str(exc)}).encode())
                applied = index
            self.db.execute("UPDATE _raft SET applied = ?", (applied,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return results

    def note_applied(self, index: int) -> None:
        assert self.db is not None
        self.db.execute("UPDATE _raft SET applied = MAX(applied, ?)", (index,))

    def snapshot(self) -> ChunkedSnapshot:
        assert self.db is not None
        fd, name = tempfile.mkstemp(suffix=".sqlite")
        os.close(fd)
        copy = sqlite3.connect(name)
        self.db.backup(copy)  # a consistent copy, _raft included
        copy.close()
        index = int(sqlite3.connect(name).execute("SELECT applied FROM _raft").fetchone()[0])

        def chunks() -> Iterable[bytes]:
            with open(name, "rb") as f:
                while block := f.read(1 << 20):
                    yield block

        return ChunkedSnapshot(index, iter(chunks()), lambda: os.unlink(name))

    def restore(self, index: int, chunks: Iterable[bytes]) -> None:
        assert self.db is not None
        fd, name = tempfile.mkstemp(suffix=".sqlite")
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        source = sqlite3.connect(name)
        source.backup(self.db)  # replaces the whole database
        source.close()
        os.unlink(name)
        self.db.execute("UPDATE _raft SET applied = ?", (index,))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def query(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        """A local read (call ``await node.read_index()`` first for a linearizable one)."""
        assert self.db is not None
        return list(self.db.execute(statement, params).fetchall())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def main() -> None:
    peers = {i: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(3), start=1)}
    with tempfile.TemporaryDirectory() as root:
        machines = {i: SQLiteStateMachine(f"{root}/app-{i}.sqlite") for i in peers}
        nodes = {
            i: RaftNode(
                NodeConfig(id=i, listen=peers[i], peers=peers, data_dir=f"{root}/{i}"), machines[i]
            )
            for i in peers
        }
        try:
            for node in nodes.values():
                await node.start()
            leader = nodes[await nodes[1].wait_for_leader(timeout=10)]
            await leader.propose(sql("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT)"))
            for name, role in (("alice", "admin"), ("bob", "dev"), ("carol", "ops")):
                await leader.propose(sql("INSERT INTO users VALUES (?, ?)", name, role))
            print(
                await leader.propose(sql("UPDATE users SET role = ? WHERE name = ?", "lead", "bob"))
            )
            print(await leader.propose(sql("INSERT INTO users VALUES (?, ?)", "alice", "x")))
            follower = next(n for n in nodes.values() if n is not leader)
            await follower.read_index()  # linearizable: the follower caught up with the leader
            rows = machines[follower.id].query("SELECT name, role FROM users ORDER BY name")
            print(f"member {follower.id} reads:", rows)
            assert rows == [("alice", "admin"), ("bob", "lead"), ("carol", "ops")]
        finally:
            for node in nodes.values():
                await node.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
