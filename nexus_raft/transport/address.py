"""NodeAddress: which node lives where, and whether to speak TLS to it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

__all__ = ["NodeAddress", "parse_endpoint"]

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _valid_hostname(host: str) -> bool:
    if not host or len(host) > 253:
        return False
    return all(_LABEL.match(label) for label in host.rstrip(".").split("."))


def parse_endpoint(endpoint: str, *, allow_port_zero: bool = False) -> tuple[str, int, bool]:
    """Split ``[http://|https://]host:port`` into ``(host, port, tls)``.

    ``host`` is a host name, an IPv4 address or a bracketed IPv6 address
    (returned without brackets). Raises ``ValueError`` for anything else,
    including a missing or out-of-range port and a trailing path. Port 0
    ("any free port") is only valid with ``allow_port_zero`` (listen addresses).
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be str, not {type(endpoint).__name__}")
    rest = endpoint.strip()
    tls = False
    lowered = rest.lower()
    if lowered.startswith("https://"):
        tls, rest = True, rest[len("https://") :]
    elif lowered.startswith("http://"):
        rest = rest[len("http://") :]
    elif "://" in rest:
        raise ValueError(f"unsupported scheme in endpoint {endpoint!r} (use http:// or https://)")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0 or rest[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid endpoint {endpoint!r}: expected [ipv6]:port")
        host, port_text = rest[1:close], rest[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address in endpoint {endpoint!r}") from None
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise ValueError(f"invalid endpoint {endpoint!r}: expected host:port")
        if not _valid_hostname(host):
            raise ValueError(f"invalid host in endpoint {endpoint!r}")
    if not port_text.isdigit():
        raise ValueError(f"invalid port in endpoint {endpoint!r}")
    port = int(port_text)
    if not (0 if allow_port_zero else 1) <= port <= 65535:
        raise ValueError(f"port out of range in endpoint {endpoint!r}")
    return host, port, tls


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A cluster member's id and the endpoint it serves peer traffic on.

    ``endpoint`` is ``host:port``, ``http://host:port`` (plaintext, same as no
    scheme) or ``https://host:port`` (TLS). Invalid endpoints raise
    ``ValueError`` here, at construction, not at the first call.
    """

    node_id: int
    endpoint: str
    host: str = field(init=False, compare=False, repr=False)
    port: int = field(init=False, compare=False, repr=False)
    tls: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.node_id, bool) or not isinstance(self.node_id, int):
            raise TypeError(f"node_id must be int, not {type(self.node_id).__name__}")
        if self.node_id <= 0:
            raise ValueError(f"node_id must be positive, got {self.node_id}")
        host, port, tls = parse_endpoint(self.endpoint)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "tls", tls)

    @property
    def target(self) -> str:
        """The ``host:port`` gRPC dials (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def same_destination(self, other: NodeAddress) -> bool:
        """True when both name the same node at the same target with the same security."""
        return (
            self.node_id == other.node_id
            and self.target == other.target
            and self.tls == other.tls
        )
