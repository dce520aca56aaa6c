"""SGX (quote v3/v4) and TDX (quote v4/v5) verification with Intel DCAP, via ``dcap-qvl``.

The evidence must be exactly one quote (``_quote_layout``); then dcap-qvl checks the quote
signature, the QE report, the PCK chain up to the pinned Intel SGX Root CA, CRLs, and the
TCB-info / QE-identity signatures and dates at the given time.
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
from teeflow.attestation._quote_layout import BODY_NAMES, check_single_quote
from teeflow.attestation._roots import INTEL_SGX_ROOT_CA_DER

__all__ = ["DcapCollateral", "dcap_tee_of", "load_dcap_collateral", "verify_dcap"]

DcapCollateral = dcap_qvl.QuoteCollateralV3
_TEE_TYPE = {"sgx": 0x00, "tdx": 0x81}  # quote header tee_type (Intel DCAP quote format)
_VERSIONS = {"sgx": frozenset({3, 4}), "tdx": frozenset({4, 5})}
# dcap-qvl's name for each report body -> the quote v5 body type it corresponds to.
_BODY_KIND = {"SgxEnclave": 1, "TD10": 2, "TD15": 3}
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
    if "debug mode" in lowered or "sept_ve_disable" in lowered:
        return AttestationError(
            f"DCAP quote refused ({message}): the TD or enclave runs in DEBUG mode or without "
            "SEPT_VE_DISABLE, so the host can read or disturb its memory; launch it without debug",
            code="policy",
        )
    if "service td" in lowered:
        return AttestationError(
            f"DCAP quote refused ({message}): the TD is bound to a service TD (MRSERVICETD is "
            "not zero), which teeflow does not accept yet; launch the TD without a service TD",
            code="policy",
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
    """Verify an Intel DCAP quote against explicit collateral at ``now``; return Claims.

    ``raw`` must be exactly one quote (v3/v4 SGX, v4/v5 TDX with a TDX 1.0 or 1.5 TD
    report): trailing bytes are refused. Every failure raises AttestationError.
    """
    if tee not in _TEE_TYPE:
        raise AttestationError(f"DCAP verifies sgx and tdx quotes, not {tee}", code="config")
    if not isinstance(collateral, dcap_qvl.QuoteCollateralV3):
        raise AttestationError(
            f"{tee} verification needs DCAP collateral: load it with load_dcap_collateral() "
            "(teeflow attest verify --collateral FILE) or fetch it with PccsCache",
            code="collateral",
        )
    now_secs = int(require_aware(now).timestamp())
    layout = check_single_quote(raw)
    if layout.tee_type != _TEE_TYPE[tee]:
        raise AttestationError(
            f"quote is not a {tee} quote (header tee_type {layout.tee_type:#x}); pass the "
            "right --tee",
            code="evidence",
        )
    if layout.version not in _VERSIONS[tee]:
        raise AttestationError(
            f"unsupported {tee} quote version {layout.version} "
            f"(supported: {', '.join(map(str, sorted(_VERSIONS[tee])))})",
            code="evidence",
        )
    try:
        verifier = dcap_qvl.QuoteVerifier(INTEL_SGX_ROOT_CA_DER)
        policy = dcap_qvl.QuotePolicy.claims_only(now_secs)
        result = json.loads(
            verifier.verify_with_policy(raw, collateral, now_secs, policy).to_json()
        )
    except ValueError as exc:
        raise _translate(str(exc)) from exc
    try:
        return _claims(tee, layout.body_type, result)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationError(
            f"dcap-qvl returned claims teeflow cannot read ({type(exc).__name__}: {exc}); "
            "check the installed dcap-qvl version",
            code="evidence",
        ) from exc


def _report_fields(
    body_type: int, reports: Mapping[str, Any]
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """The report body dcap-qvl verified, flattened, plus the TDX 1.5 extras.

    dcap-qvl names the body ``SgxEnclave``, ``TD10`` or ``TD15``; a TD15 body nests the
    TDX 1.0 fields under ``base`` and adds ``tee_tcb_svn2`` and ``mr_service_td``.
    """
    ((kind, report),) = reports.items()
    if _BODY_KIND.get(kind) != body_type:
        raise AttestationError(
            f"dcap-qvl decoded a {kind} report where the quote declares body type "
            f"{body_type} ({BODY_NAMES[body_type]})",
            code="evidence",
        )
    if kind != "TD15":
        return report, {}
    extras = {"mr_servicetd": str(report["mr_service_td"]),
              "tee_tcb_svn2": str(report["tee_tcb_svn2"])}  # fmt: skip
    return report["base"], extras


def _claims(tee: TeeType, body_type: int, result: Mapping[str, Any]) -> Claims:
    report, td15 = _report_fields(body_type, result["report"])
    details: dict[str, str] = {"report_body": BODY_NAMES[body_type]}
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
            "mr_config_id": report["mr_config_id"],
            "mr_owner": report["mr_owner"],
            "mr_owner_config": report["mr_owner_config"],
        }
        if td15:
            measurements["mr_servicetd"] = td15["mr_servicetd"]
            details["tee_tcb_svn2"] = td15["tee_tcb_svn2"]
        details["tee_tcb_svn"] = str(report["tee_tcb_svn"])
        details["td_attributes"] = str(report["td_attributes"])
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
            **details,
        },
    )


def dcap_tee_of(raw: bytes) -> TeeType | None:
    """``sgx`` or ``tdx`` if ``raw`` parses as a DCAP quote, else None (no verification)."""
    try:
        return "tdx" if dcap_qvl.parse_quote(raw).is_tdx() else "sgx"
    except ValueError:
        return None
