"""SEV-SNP guest policy, platform info, VMPL and reported TCB as claims a Policy checks.

The real Milan sample (go-sev-guest) has guest POLICY 0xb0000 (SMT allowed, DEBUG),
PLATFORM_INFO 0x1 (SMT enabled), VMPL 0 and REPORTED_TCB bootloader 2, tee 0, snp 5,
microcode 68 (README.md in ../shared/testdata/attestation).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from teeflow.attestation import (
    SNP_TCB_STATUS,
    AttestationError,
    Claims,
    Policy,
    verify,
    verify_evidence,
)


def _accepting(snp_case: dict[str, Any], **overrides: Any) -> Policy:
    """Accepts the sample as it is, so each test changes exactly one thing."""
    fields: dict[str, Any] = {
        "allowed_measurements": {snp_case["measurement"]},
        "accepted_tcb_statuses": {SNP_TCB_STATUS},
        "allow_debug": True,
        "allow_smt": True,
    }
    return Policy(**{**fields, **overrides})


def test_sample_claims_carry_guest_policy_platform_info_vmpl_and_tcb(
    report, collateral, snp_case, snp_now
):
    claims = verify_evidence(report, now=snp_now, collateral=collateral)

    policy = int(snp_case["policy"], 16)
    assert claims.guest_policy["smt_allowed"] is bool(policy >> 16 & 1) is True
    assert claims.guest_policy["debug"] is bool(policy >> 19 & 1) is True
    assert claims.guest_policy["migrate_ma"] is False
    assert claims.guest_policy["single_socket"] is False
    assert claims.platform_flags["smt_enabled"] is True
    assert claims.platform_flags["tsme_enabled"] is False
    assert claims.vmpl == snp_case["vmpl"] == 0
    assert dict(claims.reported_tcb) == snp_case["reported_tcb_spl"]
    assert claims.to_dict()["reported_tcb"] == snp_case["reported_tcb_spl"]


def test_allow_smt_false_refuses_a_report_from_an_smt_enabled_platform(
    report, collateral, snp_case, snp_now
):
    verify(report, _accepting(snp_case), now=snp_now, collateral=collateral)

    with pytest.raises(AttestationError, match="smt_enabled=true; set allow_smt") as info:
        verify(report, _accepting(snp_case, allow_smt=False), now=snp_now, collateral=collateral)

    assert info.value.code == "policy"


@pytest.mark.parametrize(
    ("minimum", "accepted"),
    [
        ({"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}, True),
        ({"snp": 4}, True),
        ({"snp": 6}, False),
        ({"microcode": 69}, False),
        ({"bootloader": 3}, False),
        ({"tee": 1}, False),
    ],
)
def test_min_snp_tcb_accepts_or_refuses_the_real_report(
    report, collateral, snp_case, snp_now, minimum, accepted
):
    policy = _accepting(snp_case, min_snp_tcb=minimum)

    if accepted:
        verify(report, policy, now=snp_now, collateral=collateral)
    else:
        with pytest.raises(AttestationError, match="below min_snp_tcb") as info:
            verify(report, policy, now=snp_now, collateral=collateral)
        assert info.value.code == "policy"


def test_require_single_socket_refuses_the_real_report(report, collateral, snp_case, snp_now):
    with pytest.raises(AttestationError, match="SINGLE_SOCKET"):
        verify(
            report,
            _accepting(snp_case, require_single_socket=True),
            now=snp_now,
            collateral=collateral,
        )


@pytest.mark.parametrize(
    ("change", "allow", "message"),
    [
        ({"vmpl": 2}, {"max_vmpl": 2}, "VMPL 2, above max_vmpl 0"),
        ({"guest_policy": {"migrate_ma": True}}, {"allow_migration_agent": True}, "MIGRATE_MA"),
        ({"debug": True}, {"allow_debug": True}, "DEBUG"),
    ],
)
def test_guest_claims_are_refused_unless_the_policy_allows_them(
    report, collateral, snp_case, snp_now, change, allow, message
):
    real = verify_evidence(report, now=snp_now, collateral=collateral)
    if "guest_policy" in change:
        change = {"guest_policy": {**real.guest_policy, **change["guest_policy"]}}
    claims = Claims(**{**real.__dict__, "debug": False, **change})
    strict = _accepting(snp_case, allow_debug=False)

    with pytest.raises(AttestationError, match=message):
        strict.check(claims, now=snp_now)
    Policy(**{**strict.__dict__, **allow}).check(claims, now=snp_now)


def test_claims_without_a_vmpl_are_refused(report, collateral, snp_case, snp_now):
    real = verify_evidence(report, now=snp_now, collateral=collateral)

    with pytest.raises(AttestationError, match="VMPL None"):
        _accepting(snp_case).check(Claims(**{**real.__dict__, "vmpl": None}), now=snp_now)


def test_snp_policy_fields_load_from_toml_and_round_trip(tmp_path):
    (tmp_path / "p.toml").write_text(
        "allow_migration_agent = false\nrequire_single_socket = true\nmax_vmpl = 1\n"
        "[min_snp_tcb]\nsnp = 8\nmicrocode = 115\n"
    )

    policy = Policy.from_file(tmp_path / "p.toml")

    assert dict(policy.min_snp_tcb) == {"microcode": 115, "snp": 8}
    assert policy.max_vmpl == 1 and policy.require_single_socket
    assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert hash(Policy.from_dict(policy.to_dict())) == hash(policy)  # still a value object


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_snp_tcb": {"fmc": 1}}, "unknown component 'fmc'"),
        ({"min_snp_tcb": {"snp": 256}}, "0..255"),
        ({"min_snp_tcb": {"snp": True}}, "0..255"),
        ({"min_snp_tcb": [8]}, "must be a table"),
        ({"max_vmpl": 4}, "max_vmpl"),
        ({"require_single_socket": "true"}, "true or false"),
        ({"allowed_measurements": "ab"}, "must be a list"),
    ],
)
def test_bad_snp_policy_fields_are_config_errors(data, message):
    with pytest.raises(AttestationError, match=message) as info:
        Policy.from_dict(data)

    assert info.value.code == "config"
