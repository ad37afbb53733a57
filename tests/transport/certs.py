"""Throwaway certificates for TLS tests: CAs, server and client certs, member certs."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "nexus test CA") -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)), key, cert


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, *, server: bool
) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_member(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    *,
    cn: str = "nexus member",
) -> Pem:
    """A member's certificate, usable as TLS server AND client, for 127.0.0.1/localhost.

    ``name`` is the member's identity name: ``nexus://...`` becomes a URI
    SAN, ``dns:...`` a DNS SAN, ``cn:...`` the common name, "" none at all.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    if name.startswith("dns:"):
        sans.append(x509.DNSName(name[4:]))
    elif name.startswith("cn:"):
        cn = name[3:]
    elif name:
        sans.append(x509.UniformResourceIdentifier(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


class MemberPki:
    """A CA and lazily made member certificates (``member(2)``), plus a foreign CA."""

    def __init__(self, template: str = "nexus://member/{id}") -> None:
        self.ca, self._key, self._cert = make_ca()
        self.other_ca, self._other_key, self._other_cert = make_ca("some other CA")
        self.template = template
        self._made: dict[object, Pem] = {}

    def member(self, member_id: int) -> Pem:
        """Member ``member_id``'s certificate, signed by the cluster CA."""
        return self.named(self.template.replace("{id}", str(member_id)))

    def named(self, name: str) -> Pem:
        """A certificate carrying identity ``name`` ("" for none), signed by the cluster CA."""
        if name not in self._made:
            self._made[name] = make_member(self._key, self._cert, name)
        return self._made[name]

    def foreign(self, member_id: int) -> Pem:
        """A certificate naming ``member_id`` but signed by another CA."""
        key = ("foreign", member_id)
        if key not in self._made:
            name = self.template.replace("{id}", str(member_id))
            self._made[key] = make_member(self._other_key, self._other_cert, name)
        return self._made[key]

    def write(self, directory: Path, label: str, pem: Pem) -> tuple[Path, Path]:
        """Write ``pem`` as ``<label>.pem``/``<label>.key`` under ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{label}.pem", directory / f"{label}.key"
        cert.write_bytes(pem.cert)
        key.write_bytes(pem.key)
        return cert, key

    def write_ca(self, directory: Path) -> Path:
        """Write the cluster CA certificate as ``ca.pem`` under ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "ca.pem"
        path.write_bytes(self.ca.cert)
        return path


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    other_ca: Pem
    stranger: Pem  # a client cert signed by other_ca


def make_pki() -> Pki:
    ca, ca_key, ca_cert = make_ca()
    other_ca, other_key, other_cert = make_ca("some other CA")
    return Pki(
        ca=ca,
        server=make_leaf(ca_key, ca_cert, "node-2", server=True),
        client=make_leaf(ca_key, ca_cert, "node-1", server=False),
        other_ca=other_ca,
        stranger=make_leaf(other_key, other_cert, "intruder", server=False),
    )
