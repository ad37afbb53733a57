"""TLS command-line flags shared by nexus-node, nexus-witness and nexusctl.

Each program turns its flags into a :class:`~nexus_raft.transport.tls.TLSConfig`
here, so every program refuses the same mistakes with the same one line:
a key without a certificate, ``--client-cert-auth`` without the CA that
verifies clients, peer certificates without the peer CA, an unreadable or
non-PEM file, a key that is not the certificate's, a CA file without a
certificate. Files are read and checked once, at start (with the standard
library's ``ssl``, before gRPC sees them: gRPC would only log its own lines
and fail to bind), so a mistake fails before anything is served or written.
"""

from __future__ import annotations

import ssl
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


def _no_password() -> bytes:
    # An encrypted key would make OpenSSL prompt on the terminal; refuse it instead.
    return b""


def _check_pair(cert_flag: str, cert: Path, key_flag: str, key: Path) -> None:
    """``key`` must be the unencrypted private key of the certificate in ``cert``."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            fail(f"{key_flag} {key} is not the private key of {cert_flag} {cert}")
        fail(
            f"{cert_flag} {cert} and {key_flag} {key}: not a PEM certificate and its "
            "unencrypted private key"
        )
    except OSError as exc:
        fail(f"{cert_flag} {cert}: cannot read: {exc.strerror or exc}")


def _check_ca(flag: str, ca: Path) -> None:
    """``ca`` must hold at least one PEM certificate."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError):
        fail(f"{flag} {ca}: holds no PEM certificate")


def _pair(cert_flag: str, cert: Path, key_flag: str, key: Path) -> tuple[bytes, bytes]:
    """The PEM bytes of a certificate and its key, checked to belong together."""
    data = _read_pem(cert_flag, cert), _read_pem(key_flag, key)
    _check_pair(cert_flag, cert, key_flag, key)
    return data


def _ca(flag: str, ca: Path) -> bytes:
    data = _read_pem(flag, ca)
    _check_ca(flag, ca)
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
    cert_pem, key_pem = _pair("--cert", cert, "--key", key)
    return TLSConfig(
        cert=cert_pem,
        key=key_pem,
        ca=_ca("--ca", ca) if ca is not None else None,
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
    cert_pem, key_pem = _pair("--peer-cert", cert, "--peer-key", key)
    return TLSConfig(
        cert=cert_pem, key=key_pem, ca=_ca("--peer-ca", ca), require_client_cert=True
    )


def client_tls(cert: Path | None, key: Path | None, ca: Path | None) -> TLSConfig | None:
    """nexusctl's ``--cert/--key/--ca`` -> TLS to the members (None: plaintext)."""
    if cert is None and key is None and ca is None:
        return None
    if (cert is None) != (key is None):
        fail("--cert and --key must be given together")
    cert_pem = key_pem = None
    if cert is not None and key is not None:
        cert_pem, key_pem = _pair("--cert", cert, "--key", key)
    return TLSConfig(
        cert=cert_pem, key=key_pem, ca=_ca("--ca", ca) if ca is not None else None
    )
