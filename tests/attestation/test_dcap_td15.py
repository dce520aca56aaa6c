"""TDX quote v5 with a TDX 1.5 TD report (body type 3), through dcap-qvl's full verify path.

No public v5 / TDX 1.5 quote with collateral is available offline, so ``dcap_forge`` turns
the real v4 quote in ../shared into a v5 quote and re-signs it under a test root (see its
docstring); the TCB info and QE identity are the real ones.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dcap_forge import Forged, forge_tdx

import teeflow.attestation._dcap as dcap
from teeflow.attestation import (
    AttestationError,
    Evidence,
    Policy,
    load_dcap_collateral,
    verify,
    verify_evidence,
)

NOW = datetime(2025, 7, 1, tzinfo=UTC)
TEE_TCB_SVN2 = bytes.fromhex("06010300000000000000000000000000")


@pytest.fixture
def case(expected: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in expected["dcap_cases"] if c["case"] == "tdx_phala_v4")


def _forge(testdata: Path, case: dict[str, Any], **kwargs: Any) -> Forged:
    return forge_tdx(testdata / case["quote"], testdata / case["collateral"], now=NOW, **kwargs)


def _verify(forged: Forged, monkeypatch: pytest.MonkeyPatch, raw: bytes | None = None) -> Any:
    monkeypatch.setattr(dcap, "INTEL_SGX_ROOT_CA_DER", forged.root_der)
    return verify_evidence(
        Evidence(tee="tdx", raw=forged.quote if raw is None else raw),
        now=NOW,
        collateral=load_dcap_collateral(forged.collateral_json),
    )


@pytest.mark.parametrize("version", [4, 5])
def test_resigned_td10_quote_verifies_like_the_original(testdata, case, monkeypatch, version):
    claims = _verify(_forge(testdata, case, version=version), monkeypatch)

    assert claims.measurement == case["mr_td"]
    assert claims.details["quote_version"] == str(version)
    assert claims.details["report_body"] == "TDX 1.0 TD report"
    assert claims.tcb_status == case["expected"]["status"]
    assert "mr_servicetd" not in claims.measurements


def test_v5_td15_quote_yields_claims_with_the_tdx15_fields(testdata, case, monkeypatch):
    forged = _forge(testdata, case, version=5, td15=(TEE_TCB_SVN2, bytes(48)))

    claims = _verify(forged, monkeypatch)

    assert claims.details["report_body"] == "TDX 1.5 TD report"
    assert claims.details["quote_version"] == "5"
    assert claims.details["tee_tcb_svn2"] == TEE_TCB_SVN2.hex()
    assert claims.measurements["mr_servicetd"] == "00" * 48
    assert claims.measurement == case["mr_td"]
    assert claims.measurements["mr_seam"] == case["mr_seam"]
    assert claims.measurements["rtmr0"] == case["rtmr0"]
    assert claims.report_data.hex() == case["report_data"]
    assert claims.tcb_status == "UpToDate"
    assert claims.debug is False


def test_v5_td15_quote_passes_a_policy_on_its_mr_td(testdata, case, monkeypatch):
    forged = _forge(testdata, case, version=5, td15=(TEE_TCB_SVN2, bytes(48)))
    monkeypatch.setattr(dcap, "INTEL_SGX_ROOT_CA_DER", forged.root_der)
    policy = Policy(
        allowed_measurements={case["mr_td"]},
        allow_dynamic_platform=True,
        allow_cached_keys=True,
        allow_smt=True,
    )

    claims = verify(
        Evidence(tee="tdx", raw=forged.quote),
        policy,
        now=NOW,
        collateral=load_dcap_collateral(forged.collateral_json),
    )

    assert claims.measurements["mr_servicetd"] == "00" * 48


@pytest.mark.parametrize("offset", [54 + 584, 54 + 600, 54 + 647])
def test_tdx15_fields_are_covered_by_the_quote_signature(testdata, case, monkeypatch, offset):
    forged = _forge(testdata, case, version=5, td15=(TEE_TCB_SVN2, bytes(48)))
    tampered = bytearray(forged.quote)
    tampered[offset] ^= 0x01

    with pytest.raises(AttestationError) as info:
        _verify(forged, monkeypatch, bytes(tampered))

    assert info.value.code == "signature"


def test_bound_service_td_is_refused_with_a_clear_error(testdata, case, monkeypatch):
    service_td = hashlib.sha384(b"a service TD").digest()
    forged = _forge(testdata, case, version=5, td15=(TEE_TCB_SVN2, service_td))

    with pytest.raises(AttestationError, match="MRSERVICETD is not zero") as info:
        _verify(forged, monkeypatch)

    assert info.value.code == "policy"


def test_td15_quote_with_bytes_appended_is_refused(testdata, case, monkeypatch):
    forged = _forge(testdata, case, version=5, td15=(TEE_TCB_SVN2, bytes(48)))

    with pytest.raises(AttestationError, match="after the signed quote"):
        _verify(forged, monkeypatch, forged.quote + bytes(8))


# The QE's own TCB level counts too: dcap-qvl folds it into the status and advisories the
# policy sees (platform UpToDate here, QE OutOfDate).
QE_OUT_OF_DATE = [
    {"tcb": {"isvsvn": 99}, "tcbDate": "2025-06-01T00:00:00Z", "tcbStatus": "UpToDate"},
    {
        "tcb": {"isvsvn": 4},
        "tcbDate": "2024-03-13T00:00:00Z",
        "tcbStatus": "OutOfDate",
        "advisoryIDs": ["INTEL-SA-00999"],
    },
]


def test_out_of_date_qe_makes_the_status_out_of_date(testdata, case, monkeypatch):
    forged = _forge(testdata, case, version=5, qe_tcb_levels=QE_OUT_OF_DATE)
    monkeypatch.setattr(dcap, "INTEL_SGX_ROOT_CA_DER", forged.root_der)
    evidence = Evidence(tee="tdx", raw=forged.quote)
    collateral = load_dcap_collateral(forged.collateral_json)
    fields: dict[str, Any] = {
        "allowed_measurements": {case["mr_td"]},
        "allow_dynamic_platform": True,
        "allow_cached_keys": True,
        "allow_smt": True,
    }

    claims = verify_evidence(evidence, now=NOW, collateral=collateral)
    with pytest.raises(AttestationError, match="TCB status OutOfDate is not accepted"):
        verify(evidence, Policy(**fields), now=NOW, collateral=collateral)
    with pytest.raises(AttestationError, match="INTEL-SA-00999"):
        verify(
            evidence,
            Policy(
                **fields,
                accepted_tcb_statuses={"OutOfDate"},
                denied_advisories={"intel-sa-00999"},
            ),
            now=NOW,
            collateral=collateral,
        )

    assert (claims.details["platform_status"], claims.details["qe_status"]) == (
        "UpToDate",
        "OutOfDate",
    )
    assert claims.advisory_ids == ("INTEL-SA-00999",)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [("0100001000000000", "DEBUG mode"), ("0000000000000000", "SEPT_VE_DISABLE")],
)
def test_debug_td_is_refused_as_a_policy_failure(testdata, case, monkeypatch, attributes, message):
    forged = _forge(testdata, case, version=5, td_attributes=bytes.fromhex(attributes))

    with pytest.raises(AttestationError, match=message) as info:
        _verify(forged, monkeypatch)

    assert info.value.code == "policy"
    assert "launch it without debug" in str(info.value)
