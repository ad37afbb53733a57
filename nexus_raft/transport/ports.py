"""Checking that a listen address is free before a program commits to it.

gRPC reports a port it cannot bind only when the server starts, after a
node has created its data directory, and its C core prints its own log lines
to stderr. :func:`check_listen` binds (and releases) a plain socket first so
a program can refuse with one clear line before it writes anything.
"""

from __future__ import annotations

import errno
import socket

from nexus_raft.transport.address import parse_endpoint
from nexus_raft.transport.errors import ListenFailed

__all__ = ["check_listen"]


def check_listen(listen: str, what: str = "listen address") -> None:
    """Raise :class:`ListenFailed` if ``host:port`` cannot be bound right now.

    Port 0 (any free port) always passes. The probe sets ``SO_REUSEADDR`` as
    gRPC's listeners do, so a port left in TIME_WAIT by a previous run passes
    and only a port someone listens on (or one we may not bind) fails.
    """
    try:
        host, port, _ = parse_endpoint(listen, allow_port_zero=True)
    except ValueError as exc:
        raise ListenFailed(f"bad {what} {listen!r}: {exc}") from None
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
    except socket.gaierror as exc:
        raise ListenFailed(f"cannot listen on {listen} ({what}): {exc.strerror}") from None
    bound = False
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(address)
                s.listen(1)
            bound = True
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise ListenFailed(
                    f"cannot listen on {listen} ({what}): {exc.strerror.lower()}"
                    if exc.strerror
                    else f"cannot listen on {listen} ({what})"
                ) from None
            last = exc
    if not bound:
        reason = (last.strerror or str(last)).lower() if last is not None else "no address"
        raise ListenFailed(f"cannot listen on {listen} ({what}): {reason}")
