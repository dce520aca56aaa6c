"""Read an enclave's own measurement out of its own evidence, without verifying it.

An executor learns what it runs as from the report its TEE just produced (the hardware fills the
measurement in; the executor cannot choose it). Nothing here is a verification: relying parties
use :func:`teeflow.attestation.verify`. Offsets follow the specifications:

- SGX DCAP quote v3 (Intel SGX ECDSA Quote Library API, appendix A): 48-byte header, then the
  384-byte enclave report body (ATTRIBUTES at 48, MRENCLAVE at 64, MRSIGNER at 128,
  ISVPRODID at 256, ISVSVN at 258, REPORTDATA at 320).
- TDX quote v4 (Intel TDX DCAP Quoting Library API, A.3): 48-byte header, then the 584-byte TD
  report body (MRSEAM at 16, TDATTRIBUTES at 120, MRTD at 136, RTMR0..3 at 328, REPORTDATA
  at 520).
- SEV-SNP attestation report (AMD SEV-SNP ABI, table 22): POLICY at 0x08 (bit 19 DEBUG),
  REPORT_DATA at 0x50, MEASUREMENT at 0x90.
"""

from __future__ import annotations

from dataclasses import dataclass

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import PRIMARY_MEASUREMENT, Evidence, TeeType
from teeflow.attestation._snp_report import parse_report as parse_snp_report

__all__ = ["ReportFields", "read_report"]

_QUOTE_HEADER = 48
_SGX_BODY = 384
_TDX_BODY = 584
_SNP_REPORT = 0x4A0


@dataclass(frozen=True)
class ReportFields:
    """Unverified fields of one report: measurements (lowercase hex), report_data, debug."""

    tee: TeeType
    measurements: dict[str, str]
    report_data: bytes
    debug: bool

    @property
    def measurement(self) -> str:
        """The primary measurement (MRENCLAVE, MRTD or the SNP launch digest)."""
        return self.measurements[PRIMARY_MEASUREMENT[self.tee]]


def _need(raw: bytes, size: int, what: str) -> None:
    if len(raw) < size:
        raise AttestationError(f"{what} is truncated ({len(raw)} bytes, need {size})")


def _sgx(raw: bytes) -> ReportFields:
    _need(raw, _QUOTE_HEADER + _SGX_BODY, "SGX quote")
    body = raw[_QUOTE_HEADER : _QUOTE_HEADER + _SGX_BODY]
    return ReportFields(
        tee="sgx",
        measurements={
            "mrenclave": body[64:96].hex(),
            "mrsigner": body[128:160].hex(),
            "isv_prod_id": str(int.from_bytes(body[256:258], "little")),
            "isv_svn": str(int.from_bytes(body[258:260], "little")),
        },
        report_data=body[320:384],
        debug=bool(body[48] & 0x02),  # ATTRIBUTES.DEBUG
    )


def _tdx(raw: bytes) -> ReportFields:
    _need(raw, _QUOTE_HEADER + _TDX_BODY, "TDX quote")
    body = raw[_QUOTE_HEADER : _QUOTE_HEADER + _TDX_BODY]
    rtmrs = {f"rtmr{i}": body[328 + 48 * i : 376 + 48 * i].hex() for i in range(4)}
    return ReportFields(
        tee="tdx",
        measurements={"mr_td": body[136:184].hex(), **rtmrs, "mr_seam": body[16:64].hex()},
        report_data=body[520:584],
        debug=bool(body[120] & 0x01),  # TDATTRIBUTES.DEBUG
    )


def _snp(raw: bytes) -> ReportFields:
    _need(raw, _SNP_REPORT, "SEV-SNP report")
    report = parse_snp_report(raw)
    return ReportFields(
        tee="sev-snp",
        measurements={"measurement": report.measurement.hex()},
        report_data=report.report_data,
        debug=report.guest_policy["debug"],
    )


def read_report(evidence: Evidence) -> ReportFields:
    """The fields of ``evidence`` (sgx, tdx or sev-snp), unverified.

    Raises AttestationError on truncated evidence or a TEE type without a hardware report.
    """
    if evidence.tee == "sgx":
        return _sgx(evidence.raw)
    if evidence.tee == "tdx":
        return _tdx(evidence.raw)
    if evidence.tee == "sev-snp":
        return _snp(evidence.raw)
    raise AttestationError(f"{evidence.tee} evidence has no hardware report to read", code="config")
