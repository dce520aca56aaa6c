"""AMD SEV-SNP attestation report verification with ``cryptography``.

Checks, per the SEV-SNP ABI spec (AMD 56860, "ATTESTATION_REPORT", Table 23) and the VCEK
spec (AMD 57230): the product is Milan (Turin/Genoa are refused as unsupported); the ARK is
one of the pinned AMD roots; ARK -> ASK -> VCEK signatures (RSASSA-PSS SHA-384); every
certificate is valid at ``now``; the VCEK's hwID is the report's CHIP_ID, byte for byte, and
its SPL extensions equal REPORTED_TCB; the report signature is ECDSA P-384 / SHA-384 over
bytes 0..0x2A0 with r and s stored little-endian. Report fields: ``_snp_report``.
"""

from __future__ import annotations

import hashlib
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
from teeflow.attestation._snp_report import SIGNED_END, SnpReport, parse_report

__all__ = ["SNP_TCB_STATUS", "SnpCollateral", "verify_snp"]

# AMD publishes no TCB status for a VCEK; a policy must accept this status explicitly.
SNP_TCB_STATUS = "NotEvaluated"
_PRODUCT_OID = "1.3.6.1.4.1.3704.1.2"
_HWID_OID = "1.3.6.1.4.1.3704.1.4"
# SPL extension OID -> the REPORTED_TCB field it must equal.
_SPL = {"1.3.6.1.4.1.3704.1.3.1": "bootloader", "1.3.6.1.4.1.3704.1.3.2": "tee",
        "1.3.6.1.4.1.3704.1.3.3": "snp", "1.3.6.1.4.1.3704.1.3.8": "microcode"}  # fmt: skip
_SUPPORTED = ("Milan",)
_TURIN_FAMILY = 0x1A


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


def _der_uint(raw: bytes, name: str) -> int:
    # The SPL extensions are one DER INTEGER each (AMD 57230, "VCEK certificate").
    minimal = len(raw) == 3 or (len(raw) > 3 and not (raw[2] == 0 and raw[3] < 0x80))
    if not minimal or raw[0] != 0x02 or raw[1] != len(raw) - 2 or raw[2] & 0x80:
        raise AttestationError(
            f"VCEK {name} SPL extension is not a DER INTEGER; use the VCEK AMD KDS serves",
            code="chain",
        )
    return int.from_bytes(raw[2:], "big")


def _product_name(exts: dict[str, x509.Extension[x509.ExtensionType]]) -> str | None:
    # productName (1.3.6.1.4.1.3704.1.2) is a DER IA5String such as "Milan-B0".
    raw = _raw(exts.get(_PRODUCT_OID))
    if raw is None or len(raw) < 2 or raw[0] != 0x16 or raw[1] != len(raw) - 2:
        return None
    return raw[2:].decode("ascii", errors="replace")


def _raw(ext: x509.Extension[x509.ExtensionType] | None) -> bytes | None:
    if ext is None or not isinstance(ext.value, x509.UnrecognizedExtension):
        return None
    return ext.value.value


def _vcek_extensions(vcek: x509.Certificate) -> dict[str, x509.Extension[x509.ExtensionType]]:
    try:
        return {e.oid.dotted_string: e for e in vcek.extensions}
    except ValueError as exc:  # duplicate or malformed extensions
        raise AttestationError(
            "VCEK extensions are malformed; use the VCEK AMD KDS serves", code="chain"
        ) from exc


def _check_product(report: SnpReport, vcek: x509.Certificate) -> None:
    """Refuse products other than Milan before any check whose failure would mislead."""
    product = _product_name(_vcek_extensions(vcek))
    from_vcek = product.split("-")[0] if product else None
    if report.cpuid_family == _TURIN_FAMILY or from_vcek not in (None, *_SUPPORTED):
        named = report.product if report.cpuid_family == _TURIN_FAMILY else product
        raise AttestationError(
            f"unsupported SEV-SNP product {named}: teeflow verifies "
            f"{', '.join(_SUPPORTED)} reports only (its ARK is the one pinned, and Turin "
            "changes the TCB layout and VCEK hwID); verify this report with AMD's tools",
            code="evidence",
        )


def _check_vcek_binding(vcek: x509.Certificate, report: SnpReport) -> None:
    exts = _vcek_extensions(vcek)
    # hwID is the 64-byte CHIP_ID itself as the extension value (no inner DER wrapper in
    # AMD's VCEKs): compare raw bytes, never strip what merely looks like a DER header.
    if _raw(exts.get(_HWID_OID)) != report.chip_id:
        raise AttestationError(
            "VCEK hwID does not match the report's CHIP_ID: wrong VCEK for this chip",
            code="chain",
        )
    for oid, name in _SPL.items():
        raw = _raw(exts.get(oid))
        if raw is None or _der_uint(raw, name) != report.tcb_levels[name]:
            raise AttestationError(
                f"VCEK {name} SPL does not match REPORTED_TCB; fetch the VCEK for the "
                "reported TCB from AMD KDS",
                code="chain",
            )


def verify_snp(raw: bytes, collateral: object, *, now: datetime) -> Claims:
    """Verify an SEV-SNP attestation report with its VCEK and AMD chain at ``now``.

    ``raw`` is the 1184-byte ATTESTATION_REPORT (version 2 or later, Milan). Returns Claims
    with the guest policy, platform info, VMPL and reported TCB; raises AttestationError.
    """
    if not isinstance(collateral, SnpCollateral):
        raise AttestationError(
            "sev-snp verification needs SnpCollateral (the VCEK and AMD cert_chain); pass "
            "--vcek and --chain",
            code="collateral",
        )
    require_aware(now)
    report = parse_report(raw)
    _check_product(report, collateral.vcek)
    _check_chain(collateral, now)
    _check_vcek_binding(collateral.vcek, report)
    try:
        key = collateral.vcek.public_key()
    except (ValueError, TypeError) as exc:
        raise AttestationError("VCEK public key cannot be read", code="chain") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError("VCEK does not hold an ECDSA P-384 key", code="chain")
    r = int.from_bytes(raw[0x2A0:0x2E8], "little")
    s = int.from_bytes(raw[0x2E8:0x330], "little")
    try:
        key.verify(encode_dss_signature(r, s), raw[:SIGNED_END], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise AttestationError(
            "SEV-SNP report signature is invalid: the report was altered or signed by another chip",
            code="signature",
        ) from exc
    return _claims(report, collateral)


def _claims(report: SnpReport, collateral: SnpCollateral) -> Claims:
    windows = [(c.not_valid_before_utc, c.not_valid_after_utc) for c in
               (collateral.ark, collateral.ask, collateral.vcek)]  # fmt: skip
    guest_policy = report.guest_policy
    tcb = report.tcb_levels
    return Claims(
        tee="sev-snp",
        measurements={"measurement": report.measurement.hex()},
        report_data=report.report_data,
        tcb_status=SNP_TCB_STATUS,
        advisory_ids=(),
        debug=guest_policy["debug"],
        simulated=False,
        collateral_valid_from=max(w[0] for w in windows),
        collateral_valid_until=min(w[1] for w in windows),
        platform_flags=report.platform_flags,
        guest_policy=guest_policy,
        reported_tcb=tcb,
        vmpl=report.vmpl,
        details={
            "report_version": str(report.version),
            "policy": hex(report.policy),
            "platform_info": hex(report.platform_info),
            "vmpl": str(report.vmpl),
            "guest_svn": str(report.guest_svn),
            "host_data": report.host_data.hex(),
            "chip_id": report.chip_id.hex(),
            "reported_tcb": hex(int.from_bytes(report.reported_tcb, "little")),
            "current_tcb": hex(int.from_bytes(report.current_tcb, "little")),
            "committed_tcb": hex(int.from_bytes(report.committed_tcb, "little")),
            "launch_tcb": hex(int.from_bytes(report.launch_tcb, "little")),
            **{f"tcb_{name}": str(level) for name, level in tcb.items()},
        },
    )
