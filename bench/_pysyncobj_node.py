"""One PySyncObj member for bench/cluster.py, with a tiny RPC for the load driver.

Run: ``python bench/_pysyncobj_node.py --self 127.0.0.1:P --partners A,B --rpc PORT``.

The member is a ``SyncObj`` with a replicated dict (PySyncObj's defaults: an
in-memory log, no journal file, so **no fsync**). Writes and reads are both
``@replicated`` methods, so a read goes through the log and is linearizable
like the other systems' reads. The RPC is length-prefixed frames over TCP,
many requests in flight per connection:

    request:  u32 len | u64 id | u8 op | u16 keylen | key | value
    response: u32 len | u64 id | u8 status | payload

ops: ``P`` put, ``G`` get, ``L`` leader (payload: the leader's raft address,
empty when none). status 0 is success, 1 a PySyncObj failure reason.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct
import sys
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

_REQ = struct.Struct(">QcH")
_RESP = struct.Struct(">QB")
_LEN = struct.Struct(">I")


class ReplicatedDict(SyncObj):  # type: ignore[misc]
    """A dict whose set and get both go through the Raft log."""

    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_addr, partners, conf)
        self._data: dict[bytes, bytes] = {}

    @replicated  # type: ignore[untyped-decorator]
    def put(self, key: bytes, value: bytes) -> bool:
        self._data[key] = value
        return True

    @replicated  # type: ignore[untyped-decorator]
    def read(self, key: bytes) -> bytes | None:
        return self._data.get(key)


async def serve(node: ReplicatedDict, rpc_port: int) -> None:
    """Serve the RPC until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(req_id: int, status: int, payload: bytes) -> None:
            body = _RESP.pack(req_id, status) + payload
            writer.write(_LEN.pack(len(body)) + body)

        def on_done(req_id: int) -> Any:
            # PySyncObj calls back on its own tick thread: hop to the loop.
            def cb(result: Any, err: int) -> None:
                if err == FAIL_REASON.SUCCESS:
                    payload = result if isinstance(result, bytes) else b""
                    loop.call_soon_threadsafe(reply, req_id, 0, payload)
                else:
                    loop.call_soon_threadsafe(reply, req_id, 1, str(err).encode())

            return cb

        try:
            while True:
                (size,) = _LEN.unpack(await reader.readexactly(4))
                frame = await reader.readexactly(size)
                req_id, op, klen = _REQ.unpack_from(frame)
                key = frame[_REQ.size : _REQ.size + klen]
                value = frame[_REQ.size + klen :]
                if op == b"P":
                    node.put(key, value, callback=on_done(req_id))
                elif op == b"G":
                    node.read(key, callback=on_done(req_id))
                elif op == b"L":
                    leader = node._getLeader()
                    reply(req_id, 0, b"" if leader is None else str(leader.address).encode())
                else:
                    reply(req_id, 1, b"bad op")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", rpc_port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    """Parse arguments, start the member and its RPC server."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--self", dest="self_addr", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--rpc", type=int, required=True)
    args = parser.parse_args(argv)
    node = ReplicatedDict(args.self_addr, args.partners.split(","), SyncObjConf())
    try:
        asyncio.run(serve(node, args.rpc))
    finally:
        node.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
