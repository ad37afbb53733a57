"""TLS command-line flags shared by nexus-node, nexus-witness and nexusctl.

Each program turns its flags into a :class:`~nexus_raft.transport.tls.TLSConfig`
here, so every program refuses the same mistakes with the same one line:
a key without a certificate, ``--client-cert-auth`` without the CA that
verifies clients, peer certificates without the peer CA, an unreadable or
non-PEM file. Files are read once, at start, so a typo fails before anything
is served or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nexus_raft.cli.common import fail
from nexus_raft.transport.tls import TLSConfig

__all__ = [
    "CaOpt",
    "CertOpt",
    "ClientCertAuthOpt",
    "KeyOpt",
    "PeerCaOpt",
    "PeerCertOpt",
    "PeerIdentityOpt",
    "PeerKeyOpt",
    "PeerListenOpt",
    "client_tls",
    "peer_tls",
    "server_tls",
]

CertOpt = Annotated[
    Path | None, typer.Option("--cert", help="PEM certificate for TLS on the client port.")
]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="PEM private key of --cert.")]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="PEM CA certificate(s) that sign client certificates."),
]
ClientCertAuthOpt = Annotated[
    bool,
    typer.Option("--client-cert-auth", help="Refuse clients without a certificate signed by --ca."),
]
PeerListenOpt = Annotated[
    str | None,
    typer.Option(
        "--peer-listen",
        help="HOST:PORT for peer traffic apart from --listen (default: share --listen).",
    ),
]
PeerCertOpt = Annotated[
    Path | None,
    typer.Option("--peer-cert", help="PEM certificate of this member for mutual TLS with peers."),
]
PeerKeyOpt = Annotated[
    Path | None, typer.Option("--peer-key", help="PEM private key of --peer-cert.")
]
PeerCaOpt = Annotated[
    Path | None,
    typer.Option("--peer-ca", help="PEM CA certificate that signs every member's certificate."),
]
PeerIdentityOpt = Annotated[
    str,
    typer.Option(
        "--peer-identity",
        help="Which certificate name proves a member's id: a URI SAN template "
        "(nexus://member/{id}), 'dns:...{id}...' or 'cn:...{id}...'.",
    ),
]


def _read_pem(flag: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"{flag} {path}: cannot read: {exc.strerror or exc}")
    if b"-----BEGIN " not in data:
        fail(f"{flag} {path}: not a PEM file")
    return data


def server_tls(
    cert: Path | None, key: Path | None, ca: Path | None, client_cert_auth: bool
) -> TLSConfig | None:
    """``--cert/--key/--ca/--client-cert-auth`` -> the client port's TLS (None: plaintext)."""
    if cert is None and key is None:
        if ca is not None or client_cert_auth:
            fail("--ca and --client-cert-auth need --cert and --key (TLS on the client port)")
        return None
    if cert is None or key is None:
        fail("--cert and --key must be given together")
    if client_cert_auth and ca is None:
        fail("--client-cert-auth needs --ca (the CA that signs client certificates)")
    return TLSConfig(
        cert=_read_pem("--cert", cert),
        key=_read_pem("--key", key),
        ca=_read_pem("--ca", ca) if ca is not None else None,
        require_client_cert=client_cert_auth,
    )


def peer_tls(cert: Path | None, key: Path | None, ca: Path | None) -> TLSConfig | None:
    """``--peer-cert/--peer-key/--peer-ca`` -> mutual TLS between members (None: none)."""
    given = [
        flag
        for flag, v in (("--peer-cert", cert), ("--peer-key", key), ("--peer-ca", ca))
        if v is not None
    ]
    if not given:
        return None
    if len(given) != 3:
        fail("--peer-cert, --peer-key and --peer-ca must be given together (mutual TLS)")
    assert cert is not None and key is not None and ca is not None
    return TLSConfig(
        cert=_read_pem("--peer-cert", cert),
        key=_read_pem("--peer-key", key),
        ca=_read_pem("--peer-ca", ca),
        require_client_cert=True,
    )


def client_tls(cert: Path | None, key: Path | None, ca: Path | None) -> TLSConfig | None:
    """nexusctl's ``--cert/--key/--ca`` -> TLS to the members (None: plaintext)."""
    if cert is None and key is None and ca is None:
        return None
    if (cert is None) != (key is None):
        fail("--cert and --key must be given together")
    return TLSConfig(
        cert=_read_pem("--cert", cert) if cert is not None else None,
        key=_read_pem("--key", key) if key is not None else None,
        ca=_read_pem("--ca", ca) if ca is not None else None,
    )
