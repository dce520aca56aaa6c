"""Re-sign a real TDX quote under a test PKI, so dcap-qvl's full verify path runs offline.

No public TDX 1.5 quote (v5, body type 3) with collateral is available as text, so the
tests take the real v4 quote and collateral in ../shared, re-shape the quote (v4 -> v5,
TDX 1.0 -> TDX 1.5 body), and re-sign every signature under a test root with the same
certificate names and the same Intel SGX PCK extension. The TCB info and QE identity JSON
are the real ones, re-signed. Only the root of trust differs; tests pin it with
``monkeypatch`` on ``_dcap.INTEL_SGX_ROOT_CA_DER``.

Layouts: Intel SGX/TDX DCAP Quoting Library API, Appendix A (quote v4/v5).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_HEADER, _TD10 = 48, 584
_NOT_BEFORE, _NOT_AFTER = datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Forged:
    """A re-signed quote, its collateral JSON and the test root (DER) to pin."""

    quote: bytes
    collateral_json: str
    root_der: bytes


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    extensions: tuple[x509.Extension[x509.ExtensionType], ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext in extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(signer, hashes.SHA256())


def _crl(issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, now: datetime) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(datetime(now.year, now.month, 1, tzinfo=UTC))
        .next_update(datetime(now.year + 1, 1, 1, tzinfo=UTC))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _split_v4(quote: bytes) -> tuple[bytes, bytes, bytes, bytes, list[x509.Certificate]]:
    """Header, TD 1.0 body, QE report, QE auth data and PCK chain of a real v4 TDX quote."""
    header, body = quote[:_HEADER], quote[_HEADER : _HEADER + _TD10]
    sig = _HEADER + _TD10 + 4
    qe = sig + 128 + 6  # ECDSA sig, attestation key, then cert data type 6 header
    qe_report = quote[qe : qe + 384]
    (auth_size,) = struct.unpack_from("<H", quote, qe + 448)
    auth = quote[qe + 450 : qe + 450 + auth_size]
    cert_type, cert_size = struct.unpack_from("<HI", quote, qe + 450 + auth_size)
    assert cert_type == 5, "the sample embeds its PCK chain (cert data type 5)"
    start = qe + 456 + auth_size
    chain = x509.load_pem_x509_certificates(quote[start : start + cert_size].rstrip(b"\0"))
    return header, body, qe_report, auth, chain


def forge_tdx(
    quote_path: Path,
    collateral_path: Path,
    *,
    now: datetime,
    version: int,
    td15: tuple[bytes, bytes] | None = None,
    qe_tcb_levels: list[dict[str, Any]] | None = None,
    td_attributes: bytes | None = None,
) -> Forged:
    """Re-sign the real v4 TDX quote as ``version`` 4 or 5; ``td15`` = (tee_tcb_svn2,
    mr_servicetd) turns its body into a TDX 1.5 TD report (v5 body type 3);
    ``qe_tcb_levels`` replaces the QE identity's TCB levels (then re-signed);
    ``td_attributes`` replaces TDATTRIBUTES (8 bytes at offset 120 of the TD report)."""
    header, body, qe_report, auth, (leaf, inter, root) = _split_v4(quote_path.read_bytes())
    if td_attributes is not None:
        body = body[:120] + td_attributes + body[128:]
    real = json.loads(collateral_path.read_text())
    if qe_tcb_levels is not None:
        identity = json.loads(real["qe_identity"])
        real["qe_identity"] = json.dumps({**identity, "tcbLevels": qe_tcb_levels})
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("root", "inter", "pck", "tcb")}
    root_cert = _cert(root.subject, root.subject, keys["root"], keys["root"], ca=True)
    inter_cert = _cert(inter.subject, root.subject, keys["inter"], keys["root"], ca=True)
    sgx_ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    pck = _cert(leaf.subject, inter.subject, keys["pck"], keys["inter"], ca=False,
                extensions=(sgx_ext,))  # fmt: skip
    tcb_subject = x509.load_pem_x509_certificates(real["tcb_info_issuer_chain"].encode())[0].subject
    tcb_cert = _cert(tcb_subject, root.subject, keys["tcb"], keys["root"], ca=False)

    attestation_key = ec.generate_private_key(ec.SECP256R1())
    numbers = attestation_key.public_key().public_numbers()
    att_pub = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    qe_report = bytearray(qe_report)
    qe_report[320:384] = hashlib.sha256(att_pub + auth).digest() + bytes(32)  # REPORTDATA
    chain = _pem(pck, inter_cert, root_cert).encode()
    qe_cert_data = (
        bytes(qe_report)
        + _raw_sig(keys["pck"], bytes(qe_report))
        + struct.pack("<H", len(auth))
        + auth
        + struct.pack("<HI", 5, len(chain))
        + chain
    )
    if version == 4:
        signed = header + body
    else:
        td_body = body + b"".join(td15) if td15 else body
        body_type = 3 if td15 else 2
        signed = (
            struct.pack("<H", 5) + header[2:] + struct.pack("<HI", body_type, len(td_body))
        ) + td_body
    sig_data = (
        _raw_sig(attestation_key, signed)
        + att_pub
        + struct.pack("<HI", 6, len(qe_cert_data))
        + qe_cert_data
    )
    collateral = {
        **real,
        "pck_crl_issuer_chain": _pem(inter_cert, root_cert),
        "root_ca_crl": _crl(root.subject, keys["root"], now).hex(),
        "pck_crl": _crl(inter.subject, keys["inter"], now).hex(),
        "tcb_info_issuer_chain": _pem(tcb_cert, root_cert),
        "tcb_info_signature": _raw_sig(keys["tcb"], real["tcb_info"].encode()).hex(),
        "qe_identity_issuer_chain": _pem(tcb_cert, root_cert),
        "qe_identity_signature": _raw_sig(keys["tcb"], real["qe_identity"].encode()).hex(),
    }
    return Forged(
        quote=signed + struct.pack("<I", len(sig_data)) + sig_data,
        collateral_json=json.dumps(collateral),
        root_der=root_cert.public_bytes(serialization.Encoding.DER),
    )
