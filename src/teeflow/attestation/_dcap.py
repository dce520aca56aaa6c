"""SGX (quote v3/v4) and TDX (quote v4/v5) verification with Intel DCAP, via ``dcap-qvl``.

dcap-qvl checks the quote signature, the QE report, the PCK chain up to the pinned Intel
SGX Root CA, CRLs, and the TCB-info / QE-identity signatures and dates at the given time.
It reports every TCB status except ``Revoked`` as success, so this module only *extracts*
the status and advisories; :class:`~teeflow.attestation.Policy` decides on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dcap_qvl

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import Claims, TeeType, require_aware
from teeflow.attestation._roots import INTEL_SGX_ROOT_CA_DER

__all__ = ["DcapCollateral", "dcap_tee_of", "load_dcap_collateral", "verify_dcap"]

DcapCollateral = dcap_qvl.QuoteCollateralV3
_TEE_TYPE = {"sgx": 0x00, "tdx": 0x81}  # quote header tee_type (Intel DCAP quote format)
_VERSIONS = {"sgx": frozenset({3, 4}), "tdx": frozenset({4, 5})}
_FLAG_NAMES = ("dynamic_platform", "cached_keys", "smt_enabled")


def load_dcap_collateral(source: Path | str | bytes) -> Any:
    """Load dcap-qvl ``QuoteCollateralV3`` JSON from a file path or the JSON text itself.

    The format is the one in the test data: PEM chains as strings, CRLs and signatures as
    hex, ``tcb_info``/``qe_identity`` as JSON strings (their exact signed bytes).
    """
    try:
        if isinstance(source, Path):
            text = source.read_text(encoding="utf-8")
        elif isinstance(source, bytes):
            text = source.decode("utf-8")
        else:
            text = source
        return dcap_qvl.QuoteCollateralV3.from_json(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AttestationError(
            f"cannot load DCAP collateral ({exc}); pass the QuoteCollateralV3 JSON for the "
            "quote's FMSPC (e.g. from your PCCS)",
            code="collateral",
        ) from exc


def _translate(message: str) -> AttestationError:
    lowered = message.lower()
    if "expired" in lowered or "in the future" in lowered or "not yet valid" in lowered:
        return AttestationError(
            f"DCAP collateral is not valid at the verification time ({message}); fetch "
            "fresh collateral from the PCCS or check the --at time",
            code="expired",
        )
    if "signature" in lowered:
        return AttestationError(
            f"DCAP quote failed its signature check ({message}); the quote was altered or "
            "was not produced by a genuine Intel platform",
            code="signature",
        )
    if "tcb level" in lowered or "revoked" in lowered:
        return AttestationError(
            f"DCAP TCB evaluation failed ({message}); the platform's TCB is unknown to or "
            "revoked by Intel's collateral - update the platform or the collateral",
            code="collateral",
        )
    return AttestationError(f"DCAP quote verification failed ({message})", code="evidence")


def _ts(seconds: object) -> datetime:
    if not isinstance(seconds, int):
        raise AttestationError("dcap-qvl returned claims without collateral dates")
    return datetime.fromtimestamp(seconds, tz=UTC)


def _flags(pck: Mapping[str, Any]) -> dict[str, bool]:
    # PCK certs of multi-package platforms say True/False; single-package ones "Undefined".
    values = {"True": True, "False": False}
    return {n: values[str(pck.get(n))] for n in _FLAG_NAMES if str(pck.get(n)) in values}


def verify_dcap(raw: bytes, tee: TeeType, collateral: object, *, now: datetime) -> Claims:
    """Verify an Intel DCAP quote against explicit collateral at ``now``; return Claims."""
    if tee not in _TEE_TYPE:
        raise AttestationError(f"DCAP verifies sgx and tdx quotes, not {tee}", code="config")
    if not isinstance(collateral, dcap_qvl.QuoteCollateralV3):
        raise AttestationError(
            f"{tee} verification needs DCAP collateral: load it with load_dcap_collateral() "
            "(teeflow attest verify --collateral FILE) or fetch it with PccsCache",
            code="collateral",
        )
    now_secs = int(require_aware(now).timestamp())
    try:
        verifier = dcap_qvl.QuoteVerifier(INTEL_SGX_ROOT_CA_DER)
        policy = dcap_qvl.QuotePolicy.claims_only(now_secs)
        result = json.loads(
            verifier.verify_with_policy(raw, collateral, now_secs, policy).to_json()
        )
    except ValueError as exc:
        raise _translate(str(exc)) from exc
    header = result["header"]
    if header["tee_type"] != _TEE_TYPE[tee]:
        raise AttestationError(
            f"quote is not a {tee} quote (header tee_type {header['tee_type']:#x}); pass the "
            "right --tee",
            code="evidence",
        )
    if header["version"] not in _VERSIONS[tee]:
        raise AttestationError(f"unsupported {tee} quote version {header['version']}")
    (report,) = result["report"].values()
    return _claims(tee, result, report)


def _claims(tee: TeeType, result: Mapping[str, Any], report: Mapping[str, Any]) -> Claims:
    if tee == "sgx":
        measurements = {
            "mrenclave": report["mr_enclave"],
            "mrsigner": report["mr_signer"],
            "isv_prod_id": str(report["isv_prod_id"]),
            "isv_svn": str(report["isv_svn"]),
        }
        debug = bool(bytes.fromhex(report["attributes"])[0] & 0x02)  # ATTRIBUTES.DEBUG
    else:
        measurements = {
            "mr_td": report["mr_td"],
            **{f"rtmr{i}": report[f"rt_mr{i}"] for i in range(4)},
            "mr_seam": report["mr_seam"],
        }
        debug = bool(bytes.fromhex(report["td_attributes"])[0] & 0x01)  # TDATTRIBUTES.DEBUG
    tcb, platform, qe = result["tcb"], result["platform"], result["qe"]
    pck = platform["pck"]
    return Claims(
        tee=tee,
        measurements=measurements,
        report_data=bytes.fromhex(report["report_data"]),
        tcb_status=str(tcb["status"]),
        advisory_ids=tuple(sorted(str(a) for a in tcb["advisory_ids"])),
        debug=debug,
        simulated=False,
        collateral_valid_from=max(
            _ts(result["latest_issue_date"]), _ts(result["qe_iden_latest_issue_date"])
        ),
        collateral_valid_until=min(
            _ts(result["earliest_expiration_date"]),
            _ts(result["qe_iden_earliest_expiration_date"]),
        ),
        platform_flags=_flags(pck),
        details={
            "quote_version": str(result["header"]["version"]),
            "fmspc": bytes(pck["fmspc"]).hex().upper(),
            "qe_status": str(qe["tcb_level"]["tcbStatus"]),
            "platform_status": str(platform["tcb_level"]["tcbStatus"]),
            "tcb_date": str(platform["tcb_level"]["tcbDate"]),
            "tcb_eval_data_number": str(tcb["eval_data_number"]),
        },
    )


def dcap_tee_of(raw: bytes) -> TeeType | None:
    """``sgx`` or ``tdx`` if ``raw`` parses as a DCAP quote, else None (no verification)."""
    try:
        return "tdx" if dcap_qvl.parse_quote(raw).is_tdx() else "sgx"
    except ValueError:
        return None
