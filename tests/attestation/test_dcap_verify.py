"""SGX and TDX DCAP verification on real quotes and collateral (expected.json)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import (
    AttestationError,
    Claims,
    Evidence,
    Policy,
    load_dcap_collateral,
    verify,
    verify_evidence,
)
from teeflow.attestation._quote_layout import quote_layout

VERIFIED = ["sgx_phala_v3", "tdx_phala_v4"]
ALL_CASES = [*VERIFIED, "tdx_gotdx_SPR_E4_v4"]


def _case(expected: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in expected["dcap_cases"] if c["case"] == name)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _load(testdata: Path, case: dict[str, Any]) -> tuple[Evidence, object]:
    tee = case["tee"].lower()
    raw = (testdata / case["quote"]).read_bytes()
    # Two samples carry bytes after the quote, which is refused (test_dcap_quote_layout.py).
    evidence = Evidence(tee=tee, raw=raw[: quote_layout(raw).length])
    return evidence, load_dcap_collateral(testdata / case["collateral"])


def _permissive(claims: Claims, **overrides: Any) -> Policy:
    """A policy that accepts exactly this evidence, so each test can break one thing."""
    fields: dict[str, Any] = {
        "allowed_measurements": {claims.measurement},
        "accepted_tcb_statuses": {claims.tcb_status},
        "allow_dynamic_platform": True,
        "allow_cached_keys": True,
        "allow_smt": True,
    }
    fields.update(overrides)
    return Policy(**fields)


@pytest.mark.parametrize("name", VERIFIED)
def test_case_yields_expected_status_advisories_and_fields(testdata, expected, name):
    case = _case(expected, name)
    evidence, collateral = _load(testdata, case)

    claims = verify_evidence(evidence, now=_at(case["now"]), collateral=collateral)

    assert claims.tcb_status == case["expected"]["status"]
    assert list(claims.advisory_ids) == case["expected"]["advisory_ids"]
    assert claims.details["qe_status"] == case["expected"]["qe_status"]
    assert claims.details["fmspc"] == case["fmspc"]
    assert claims.details["quote_version"] == str(case["quote_version"])
    assert claims.report_data.hex() == case["report_data"]
    assert claims.collateral_valid_from == _at(case["collateral_valid_from"])
    assert claims.collateral_valid_until == _at(case["collateral_valid_until"])
    assert claims.debug is False
    assert claims.simulated is False
    if claims.tee == "sgx":
        assert claims.measurement == case["mr_enclave"]
        assert claims.measurements["mrsigner"] == case["mr_signer"]
        assert claims.measurements["isv_prod_id"] == str(case["isv_prod_id"])
        assert claims.measurements["isv_svn"] == str(case["isv_svn"])
    else:
        assert claims.measurement == case["mr_td"]
        assert claims.measurements["mr_seam"] == case["mr_seam"]
        assert claims.measurements["rtmr0"] == case["rtmr0"]
        assert claims.measurements["rtmr3"] == case["rtmr3"]


@pytest.mark.parametrize("name", VERIFIED)
def test_policy_built_for_the_case_accepts_it(testdata, expected, name):
    case = _case(expected, name)
    evidence, collateral = _load(testdata, case)
    now = _at(case["now"])
    policy = _permissive(verify_evidence(evidence, now=now, collateral=collateral))

    claims = verify(evidence, policy, now=now, collateral=collateral)

    assert claims.tcb_status == case["expected"]["status"]


def test_spr_e4_has_no_matching_tcb_level(testdata, expected):
    case = _case(expected, "tdx_gotdx_SPR_E4_v4")
    evidence, collateral = _load(testdata, case)

    with pytest.raises(AttestationError, match="No matching TCB level found") as info:
        verify_evidence(evidence, now=_at(case["now"]), collateral=collateral)

    assert info.value.code == "collateral"


@pytest.mark.parametrize("name", ALL_CASES)
@pytest.mark.parametrize(
    ("edge", "shift", "key"),
    [("collateral_valid_from", -1, "before_window"), ("collateral_valid_until", 1, "after_window")],
)
def test_outside_collateral_window_fails_as_expired(testdata, expected, name, edge, shift, key):
    case = _case(expected, name)
    evidence, collateral = _load(testdata, case)
    now = _at(case[edge]) + timedelta(hours=shift)

    with pytest.raises(AttestationError) as info:
        verify_evidence(evidence, now=now, collateral=collateral)

    assert info.value.code == "expired"
    assert case[key].removeprefix("Verification failed: ") in str(info.value)


@pytest.mark.parametrize("name", VERIFIED)
@pytest.mark.parametrize("offset", [100, 368, 600])
def test_one_flipped_byte_in_signed_body_fails(testdata, expected, name, offset):
    case = _case(expected, name)
    evidence, collateral = _load(testdata, case)
    tampered = bytearray(evidence.raw)
    tampered[offset] ^= 0x01

    with pytest.raises(AttestationError) as info:
        verify_evidence(
            Evidence(tee=evidence.tee, raw=bytes(tampered)),
            now=_at(case["now"]),
            collateral=collateral,
        )

    assert info.value.code == "signature"


def test_default_status_list_rejects_sgx_configuration_and_sw_hardening(testdata, expected):
    case = _case(expected, "sgx_phala_v3")
    evidence, collateral = _load(testdata, case)
    policy = Policy(allowed_measurements={case["mr_enclave"]})

    with pytest.raises(AttestationError, match="ConfigurationAndSWHardeningNeeded") as info:
        verify(evidence, policy, now=_at(case["now"]), collateral=collateral)

    assert info.value.code == "policy"


def test_denied_advisory_rejects_an_accepted_status(testdata, expected):
    case = _case(expected, "sgx_phala_v3")
    evidence, collateral = _load(testdata, case)
    now = _at(case["now"])
    policy = _permissive(
        verify_evidence(evidence, now=now, collateral=collateral),
        denied_advisories={"INTEL-SA-00615"},
    )

    with pytest.raises(AttestationError, match="INTEL-SA-00615"):
        verify(evidence, policy, now=now, collateral=collateral)


@pytest.mark.parametrize("name", VERIFIED)
def test_measurement_not_on_allow_list_rejects(testdata, expected, name):
    case = _case(expected, name)
    evidence, collateral = _load(testdata, case)
    now = _at(case["now"])
    claims = verify_evidence(evidence, now=now, collateral=collateral)
    policy = _permissive(claims, allowed_measurements={"00" * 32})

    with pytest.raises(AttestationError, match="not in allowed_measurements"):
        verify(evidence, policy, now=now, collateral=collateral)


def test_tdx_dynamic_platform_rejected_unless_allowed(testdata, expected):
    case = _case(expected, "tdx_phala_v4")
    evidence, collateral = _load(testdata, case)
    now = _at(case["now"])
    claims = verify_evidence(evidence, now=now, collateral=collateral)
    policy = _permissive(claims, allow_dynamic_platform=False)

    with pytest.raises(AttestationError, match="dynamic_platform"):
        verify(evidence, policy, now=now, collateral=collateral)

    assert claims.platform_flags == {
        "dynamic_platform": True,
        "cached_keys": True,
        "smt_enabled": True,
    }


def test_debug_claims_rejected_by_default(testdata, expected):
    case = _case(expected, "tdx_phala_v4")
    evidence, collateral = _load(testdata, case)
    now = _at(case["now"])
    real = verify_evidence(evidence, now=now, collateral=collateral)
    debug = Claims(**{**real.__dict__, "debug": True})

    with pytest.raises(AttestationError, match="DEBUG"):
        _permissive(real).check(debug, now=now)

    _permissive(real, allow_debug=True).check(debug, now=now)


def test_wrong_tee_label_is_rejected(testdata, expected):
    case = _case(expected, "tdx_phala_v4")
    evidence, collateral = _load(testdata, case)

    with pytest.raises(AttestationError, match="not a sgx quote"):
        verify_evidence(
            Evidence(tee="sgx", raw=evidence.raw), now=_at(case["now"]), collateral=collateral
        )


def test_missing_collateral_says_what_to_do(testdata, expected):
    case = _case(expected, "sgx_phala_v3")
    evidence, _ = _load(testdata, case)

    with pytest.raises(AttestationError, match="load_dcap_collateral"):
        verify_evidence(evidence, now=_at(case["now"]))


def test_naive_time_is_refused(testdata, expected):
    case = _case(expected, "sgx_phala_v3")
    evidence, collateral = _load(testdata, case)

    with pytest.raises(AttestationError, match="timezone-aware"):
        verify_evidence(evidence, now=datetime(2025, 7, 1), collateral=collateral)
