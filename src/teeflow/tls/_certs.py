"""A private deployment's certificates: a self-signed CA and one server certificate.

For a deployment without a public CA (a consortium's own network): ``teeflow tls init`` writes
the CA (``ca.pem``, given to every member and executor host as ``--ca-cert``), its key
(``ca-key.pem``, kept offline or deleted; it can sign more servers), and the server's
certificate and key (``server.pem``, ``server-key.pem``, for ``--tls-cert``/``--tls-key``).
Keys are ECDSA P-256, files with a key are 0600, and nothing is overwritten.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teeflow.crypto import private_directory

__all__ = ["TlsFiles", "make_private_ca"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS server: its certificate and key, and the CA clients verify it with
    (``ca_key``: where :func:`make_private_ca` left the CA's key; None when not at hand)."""

    ca_cert: Path
    cert: Path
    key: Path
    ca_key: Path | None = None


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_private_ca(
    directory: Path,
    *,
    hosts: Sequence[str],
    name: str = "teeflow private CA",
    days: int = 825,
    now: datetime | None = None,
) -> TlsFiles:
    """Write a CA and a server certificate for ``hosts`` (DNS names or IP addresses, each a
    subjectAltName) into ``directory`` (made 0700), valid ``days`` from ``now``.

    Raises ValueError when ``hosts`` is empty, FileExistsError when a file is already there.
    """
    if not hosts:
        raise ValueError("give at least one host name or IP address the server is reached by")
    private_directory(directory)
    files = TlsFiles(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
    )
    for path in (files.ca_cert, directory / "ca-key.pem", files.cert, files.key):
        if path.exists():
            raise FileExistsError(f"{path} exists; choose an empty directory")
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # clocks of hosts differ a little
    end = start + timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write_new(directory / "ca-key.pem", _key_pem(ca_key), 0o600)
    _write_new(files.key, _key_pem(server_key), 0o600)
    _write_new(files.ca_cert, ca_cert.public_bytes(pem), 0o644)
    _write_new(files.cert, server_cert.public_bytes(pem), 0o644)
    return files
