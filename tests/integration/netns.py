"""Real network namespaces for partition tests: one namespace per member on a bridge.

:class:`Netns` creates ``count`` namespaces (``nx-<tag>-<pid>-<i>``), each
with a veth pair whose outer end joins one bridge in the root namespace. The
bridge holds the ``.254`` address of a private /24, so the test process (the
client, in the root namespace) reaches every member, and the members reach
each other. :meth:`Netns.cut` adds a blackhole route inside one namespace:
packets from there to the address are dropped silently, so a TCP peer on the
other side sees nothing at all (a silent partition, not a refused
connection). :meth:`Netns.close` deletes everything; every test calls it in
``finally``.

Available only as root with ``ip`` (iproute2) and netns support;
:func:`netns_unavailable` says why not, for ``pytest.skip``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

__all__ = ["Netns", "netns_unavailable"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"nx-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _ip("-o", "-4", "addr", "show", check=False).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


class Netns:
    """``count`` namespaces on one bridge; see the module docstring."""

    def __init__(self, tag: str, count: int) -> None:
        pid = os.getpid()
        self.names = [f"nx-{tag}-{pid}-{i}" for i in range(count)]
        self.bridge = f"nxb{pid % 10**9}"[:15]
        self._veths = [f"nxv{pid % 10**7}{i}"[:15] for i in range(count)]
        self.network = self._free_network(pid)
        hosts = list(self.network.hosts())
        self.addresses = [str(hosts[i]) for i in range(count)]
        self.host_address = str(hosts[253])
        self._cuts: list[tuple[str, str]] = []
        self._made: list[str] = []
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _free_network(pid: int) -> ipaddress.IPv4Network:
        used = _used_networks()
        for step in range(256):
            n = (pid + step * 7919) % (50 * 250)
            net = ipaddress.ip_network(f"10.{200 + n // 250}.{n % 250}.0/24")
            if not any(net.overlaps(u) for u in used):
                return net
        raise RuntimeError("no free 10.x.y.0/24 network for the test bridge")

    def _create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(self.bridge)
        _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for name, veth, address in zip(self.names, self._veths, self.addresses, strict=True):
            _ip("netns", "add", name)
            self._made.append(name)
            inner = veth + "i" if len(veth) < 15 else veth[:-1] + "i"
            _ip("link", "add", veth, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", name)
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", name, "link", "set", inner, "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")

    def exec_prefix(self, index: int) -> list[str]:
        """The command prefix that runs a program inside namespace ``index``."""
        return ["ip", "netns", "exec", self.names[index]]

    def cut(self, index: int, address: str) -> None:
        """Drop every packet namespace ``index`` sends to ``address`` (silently)."""
        _ip("-n", self.names[index], "route", "add", "blackhole", f"{address}/32")
        self._cuts.append((self.names[index], address))

    def heal(self) -> None:
        """Remove every cut."""
        for name, address in self._cuts:
            _ip("-n", name, "route", "del", "blackhole", f"{address}/32", check=False)
        self._cuts.clear()

    def close(self) -> None:
        """Delete the namespaces (their veths go with them) and the bridge. Idempotent."""
        for name in self.names:
            if name in self._made:
                _ip("netns", "del", name, check=False)
        if self.bridge in self._made:
            _ip("link", "del", self.bridge, check=False)
        for veth in self._veths:
            _ip("link", "del", veth, check=False)
        self._made.clear()
