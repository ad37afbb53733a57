"""TLSConfig: certificates for server TLS, client TLS and mutual TLS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["PemSource", "TLSConfig"]

PemSource = bytes | str | os.PathLike[str]
"""PEM data as ``bytes``, or the path of a PEM file as ``str``/``PathLike``."""


def _load(name: str, value: PemSource | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {name} from {os.fspath(value)!r}: {exc}") from exc
    raise TypeError(f"{name} must be bytes (PEM) or a path, not {type(value).__name__}")


@dataclass(frozen=True)
class TLSConfig:
    """Certificates for one member.

    Each of ``cert``, ``key`` and ``ca`` is PEM ``bytes`` or the path of a PEM
    file (read once, when the credentials are built).

    * Server side: ``cert``/``key`` are the server's identity (required);
      with ``require_client_cert`` the server refuses clients that do not
      present a certificate signed by ``ca`` (mutual TLS; ``ca`` required).
    * Client side (``https://`` endpoints): ``ca`` verifies the server (the
      system roots when ``None``); ``cert``/``key``, when given, are the
      client's identity for mutual TLS.
    """

    cert: PemSource | None = None
    key: PemSource | None = None
    ca: PemSource | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        for name in ("cert", "key", "ca"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (bytes, str, os.PathLike)):
                raise TypeError(
                    f"{name} must be bytes (PEM) or a path, not {type(value).__name__}"
                )
        if not isinstance(self.require_client_cert, bool):
            raise TypeError("require_client_cert must be bool")
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be given together")

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for :class:`~nexus_raft.transport.RaftServer`."""
        cert, key, ca = _load("cert", self.cert), _load("key", self.key), _load("ca", self.ca)
        if cert is None or key is None:
            raise ValueError("a TLS server needs cert and key")
        if self.require_client_cert and ca is None:
            raise ValueError("require_client_cert needs ca to verify client certificates")
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=ca,
            require_client_auth=self.require_client_cert,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Credentials for a client channel to an ``https://`` endpoint."""
        return grpc.ssl_channel_credentials(
            root_certificates=_load("ca", self.ca),
            private_key=_load("key", self.key),
            certificate_chain=_load("cert", self.cert),
        )
