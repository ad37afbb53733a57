"""A private network of Linux network namespaces for partition tests (root only).

Layout: one hub namespace holding a bridge, one namespace per member and one
for the clients, each joined to the bridge by a veth pair; every address is
in a private /24 that exists only inside these namespaces. Faults are real
packet drops, no emulation:

- ``isolate(i)``: ``tc qdisc replace dev eth0 root blackhole`` in member
  ``i``'s namespace (it sends nothing) and on its bridge port (nothing
  reaches it): a silent drop both ways.
- ``cut(i, j)``: member ``i`` stops sending to member ``j`` only: an HTB
  root qdisc on ``i``'s ``eth0`` whose default class passes everything and
  whose second class ends in a ``blackhole`` qdisc, with a ``u32`` filter
  steering packets for ``j``'s address into it (this kernel has no ``tc``
  actions or ``netem``). Cutting both directions of some pairs gives bridge
  partitions (``a`` and ``c`` cannot talk, ``b`` talks to both).
- ``heal()``: every root qdisc removed.

Names carry the creating process's pid and a random token
(``nx-verify-<pid>-<token>-...``); :meth:`close` (always called, in
``finally``) kills what runs inside and deletes every namespace.
``available()`` says, in one line, why namespaces cannot be used here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

__all__ = ["Lab", "available"]


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


def available() -> str | None:
    """None when namespaces, veth pairs, bridges and ``tc`` work here; else why not."""
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed"
    name = f"nx-verify-{os.getpid()}-{secrets.token_hex(3)}-probe"
    try:
        out = _run("ip", "netns", "add", name, check=False)
        if out.returncode != 0:
            return f"cannot create a network namespace: {out.stderr.strip()}"
        out = _run("ip", "-n", name, "link", "add", "br0", "type", "bridge", check=False)
        if out.returncode != 0:
            return f"cannot create a bridge: {out.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", name, check=False)
    return None


class Lab:
    """Namespaces for ``members`` members and one client namespace (see the module doc)."""

    def __init__(self, members: int) -> None:
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.prefix = f"nx-verify-{self.token}"
        pid = os.getpid()
        # A /24 picked from the pid: two labs of one machine rarely share it, and
        # even then their bridges are separate (the addresses never leave them).
        self.net = f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        self.hub = f"{self.prefix}-hub"
        self.members = members
        self.ns = [f"{self.prefix}-n{i + 1}" for i in range(members)]
        self.client_ns = f"{self.prefix}-c"
        tag = secrets.token_hex(2)
        # veth names are at most 15 bytes: "nx" + 4 hex + index.
        self._ports = [f"nx{tag}p{i + 1}" for i in range(members)] + [f"nx{tag}pc"]
        self._made: list[str] = []
        self._cut: dict[int, set[int]] = {}

    def ip(self, i: int) -> str:
        """Member ``i``'s (0-based) address."""
        return f"{self.net}.{i + 1}"

    @property
    def client_ip(self) -> str:
        return f"{self.net}.100"

    def setup(self) -> None:
        """Create the hub, the bridge and one namespace + veth per member and the client."""
        _run("ip", "netns", "add", self.hub)
        self._made.append(self.hub)
        _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.hub, "link", "set", "br0", "up")
        hosts = [*zip(self.ns, [self.ip(i) for i in range(self.members)], strict=True),
                 (self.client_ns, self.client_ip)]
        for (ns, addr), port in zip(hosts, self._ports, strict=True):
            _run("ip", "netns", "add", ns)
            self._made.append(ns)
            _run("ip", "link", "add", port, "netns", self.hub, "type", "veth",
                 "peer", "name", "eth0", "netns", ns)
            _run("ip", "-n", self.hub, "link", "set", port, "master", "br0", "up")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")

    def exec_argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *argv]

    # --- faults -------------------------------------------------------------------------

    def isolate(self, i: int) -> None:
        """Drop everything member ``i`` sends and everything sent to it."""
        _run("tc", "-n", self.ns[i], "qdisc", "replace", "dev", "eth0", "root", "blackhole")
        _run("tc", "-n", self.hub, "qdisc", "replace", "dev", self._ports[i], "root", "blackhole")
        self._cut[i] = set(range(self.members)) - {i}

    def cut(self, i: int, j: int) -> None:
        """Drop what member ``i`` sends to member ``j`` (one way)."""
        ns = self.ns[i]
        if i not in self._cut:
            _run("tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:",
                 "htb", "default", "10")
            _run("tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid",
                 "1:10", "htb", "rate", "10gbit")
            _run("tc", "-n", ns, "class", "add", "dev", "eth0", "parent", "1:", "classid",
                 "1:20", "htb", "rate", "10gbit")
            _run("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "parent", "1:20", "handle",
                 "20:", "blackhole")
            self._cut[i] = set()
        if j in self._cut[i]:
            return
        _run("tc", "-n", ns, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip",
             "prio", "1", "u32", "match", "ip", "dst", f"{self.ip(j)}/32", "flowid", "1:20")
        self._cut[i].add(j)

    def split(self, a: int, b: int) -> None:
        """Cut ``a`` and ``b`` from each other (both ways)."""
        self.cut(a, b)
        self.cut(b, a)

    def heal(self) -> None:
        """Remove every fault."""
        for i in range(self.members):
            _run("tc", "-n", self.ns[i], "qdisc", "del", "dev", "eth0", "root", check=False)
            _run("tc", "-n", self.hub, "qdisc", "del", "dev", self._ports[i], "root", check=False)
        self._cut.clear()

    def describe(self) -> str:
        """The current cuts, e.g. ``n1->n3 n3->n1``."""
        return " ".join(f"n{i + 1}->n{j + 1}" for i, js in sorted(self._cut.items())
                        for j in sorted(js)) or "none"

    # --- cleanup ------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process left in the namespaces, then delete them (idempotent)."""
        for ns in reversed(self._made):
            out = _run("ip", "netns", "pids", ns, check=False)
            for pid in out.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", ns, check=False)
        self._made.clear()
