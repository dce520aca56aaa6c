"""AMD SEV-SNP attestation report verification with ``cryptography``.

Checks, per the SEV-SNP ABI spec (AMD 56860, "ATTESTATION_REPORT", Table 23) and the VCEK
spec (AMD 57230): the ARK is one of the pinned AMD roots; ARK -> ASK -> VCEK signatures
(RSASSA-PSS SHA-384); every certificate is valid at ``now``; the VCEK's hwID equals the
report's CHIP_ID and its SPL extensions equal REPORTED_TCB; the report signature is
ECDSA P-384 / SHA-384 over bytes 0..0x2A0 with r and s stored little-endian.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import Claims, require_aware
from teeflow.attestation._roots import AMD_ARK_SPKI_SHA256

__all__ = ["SNP_TCB_STATUS", "SnpCollateral", "verify_snp"]

# AMD publishes no TCB status for a VCEK; a policy must accept this status explicitly.
SNP_TCB_STATUS = "NotEvaluated"
_REPORT_SIZE = 0x4A0
_SIGNED_END = 0x2A0
_HWID_OID = "1.3.6.1.4.1.3704.1.4"
# SPL extension OID suffix -> byte index inside REPORTED_TCB (Milan/Genoa layout).
_SPL = {"1.3.6.1.4.1.3704.1.3.1": 0, "1.3.6.1.4.1.3704.1.3.2": 1,
        "1.3.6.1.4.1.3704.1.3.3": 6, "1.3.6.1.4.1.3704.1.3.8": 7}  # fmt: skip
_SPL_NAMES = ("bootloader", "tee", "", "", "", "", "snp", "microcode")
_POLICY_DEBUG = 1 << 19


def _load_der(data: bytes, what: str) -> x509.Certificate:
    try:
        # AMD's VCEKs carry a non-positive serial number, which cryptography loads with a
        # deprecation warning; that defect is AMD's and does not weaken the signature checks.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*serial number.*")
            if data.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise AttestationError(f"{what} is not a valid certificate", code="chain") from exc


@dataclass(frozen=True)
class SnpCollateral:
    """The VCEK for the reporting chip/TCB and AMD's ``cert_chain`` (ASK then ARK, PEM)."""

    vcek: x509.Certificate
    ask: x509.Certificate
    ark: x509.Certificate

    @classmethod
    def from_bytes(cls, *, vcek: bytes, chain_pem: bytes) -> SnpCollateral:
        """Load a VCEK (DER or PEM) and a KDS ``cert_chain`` PEM (ASK first, then ARK)."""
        try:
            chain = x509.load_pem_x509_certificates(chain_pem)
        except ValueError as exc:
            raise AttestationError("AMD cert chain is not valid PEM", code="chain") from exc
        if len(chain) != 2:
            raise AttestationError(
                f"AMD cert chain must hold ASK then ARK, found {len(chain)} certificate(s); "
                "download it from https://kdsintf.amd.com/vcek/v1/<product>/cert_chain",
                code="chain",
            )
        return cls(vcek=_load_der(vcek, "VCEK"), ask=chain[0], ark=chain[1])

    @classmethod
    def from_files(cls, *, vcek: Path, chain: Path) -> SnpCollateral:
        try:
            return cls.from_bytes(vcek=vcek.read_bytes(), chain_pem=chain.read_bytes())
        except OSError as exc:
            raise AttestationError(f"cannot read SEV-SNP collateral: {exc}", code="chain") from exc


def _check_chain(coll: SnpCollateral, now: datetime) -> None:
    spki = coll.ark.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if hashlib.sha256(spki).hexdigest() not in AMD_ARK_SPKI_SHA256.values():
        raise AttestationError(
            "the ARK is not a pinned AMD root key; use AMD's cert_chain from kdsintf.amd.com",
            code="chain",
        )
    for child, parent, name in (
        (coll.ark, coll.ark, "ARK"),
        (coll.ask, coll.ark, "ASK"),
        (coll.vcek, coll.ask, "VCEK"),
    ):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise AttestationError(
                f"SEV-SNP certificate chain is broken at the {name}; use the VCEK and "
                "cert_chain that AMD KDS serves for this chip",
                code="chain",
            ) from exc
        if not child.not_valid_before_utc <= now <= child.not_valid_after_utc:
            raise AttestationError(
                f"SEV-SNP {name} certificate is not valid at {now.isoformat()} "
                f"({child.not_valid_before_utc:%Y-%m-%d}..{child.not_valid_after_utc:%Y-%m-%d});"
                " fetch a current one from AMD KDS",
                code="expired",
            )


def _der_value(ext: x509.Extension[x509.ExtensionType], tag: int) -> bytes:
    # The AMD extensions are a single short-form DER INTEGER or OCTET STRING, or raw bytes.
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    if len(raw) >= 2 and raw[0] == tag and raw[1] == len(raw) - 2:
        return raw[2:]
    return raw


def _check_vcek_binding(vcek: x509.Certificate, chip_id: bytes, reported_tcb: bytes) -> None:
    exts = {e.oid.dotted_string: e for e in vcek.extensions}
    if _HWID_OID not in exts or _der_value(exts[_HWID_OID], 0x04) != chip_id:
        raise AttestationError(
            "VCEK hwID does not match the report's CHIP_ID: wrong VCEK for this chip",
            code="chain",
        )
    for oid, index in _SPL.items():
        if (
            oid not in exts
            or int.from_bytes(_der_value(exts[oid], 0x02), "big") != (reported_tcb[index])
        ):
            raise AttestationError(
                f"VCEK {_SPL_NAMES[index]} SPL does not match REPORTED_TCB; fetch the VCEK "
                "for the reported TCB from AMD KDS",
                code="chain",
            )


def verify_snp(raw: bytes, collateral: object, *, now: datetime) -> Claims:
    """Verify an SEV-SNP attestation report with its VCEK and AMD chain at ``now``."""
    if not isinstance(collateral, SnpCollateral):
        raise AttestationError(
            "sev-snp verification needs SnpCollateral (the VCEK and AMD cert_chain); pass "
            "--vcek and --chain",
            code="collateral",
        )
    require_aware(now)
    if len(raw) != _REPORT_SIZE:
        raise AttestationError(f"SEV-SNP report must be {_REPORT_SIZE} bytes, got {len(raw)}")
    version, _svn, policy, vmpl, sig_algo = struct.unpack_from("<IIQ16x16xII", raw, 0)
    if version < 2 or sig_algo != 1:
        raise AttestationError(f"unsupported SEV-SNP report (version {version}, algo {sig_algo})")
    _check_chain(collateral, now)
    chip_id, reported_tcb = raw[0x1A0:0x1E0], raw[0x180:0x188]
    _check_vcek_binding(collateral.vcek, chip_id, reported_tcb)
    key = collateral.vcek.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError("VCEK does not hold an ECDSA P-384 key", code="chain")
    r = int.from_bytes(raw[0x2A0:0x2E8], "little")
    s = int.from_bytes(raw[0x2E8:0x330], "little")
    try:
        key.verify(encode_dss_signature(r, s), raw[:_SIGNED_END], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise AttestationError(
            "SEV-SNP report signature is invalid: the report was altered or signed by another chip",
            code="signature",
        ) from exc
    windows = [(c.not_valid_before_utc, c.not_valid_after_utc) for c in
               (collateral.ark, collateral.ask, collateral.vcek)]  # fmt: skip
    return Claims(
        tee="sev-snp",
        measurements={"measurement": raw[0x90:0xC0].hex()},
        report_data=raw[0x50:0x90],
        tcb_status=SNP_TCB_STATUS,
        advisory_ids=(),
        debug=bool(policy & _POLICY_DEBUG),
        simulated=False,
        collateral_valid_from=max(w[0] for w in windows),
        collateral_valid_until=min(w[1] for w in windows),
        details={
            "report_version": str(version),
            "policy": hex(policy),
            "vmpl": str(vmpl),
            "host_data": raw[0xC0:0xE0].hex(),
            "chip_id": chip_id.hex(),
            "reported_tcb": hex(int.from_bytes(reported_tcb, "little")),
            **{f"tcb_{n}": str(reported_tcb[i]) for i, n in enumerate(_SPL_NAMES) if n},
        },
    )
