"""SEV-SNP report verification on the real Milan sample (go-sev-guest)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from teeflow.attestation import (
    SNP_TCB_STATUS,
    AttestationError,
    Evidence,
    Policy,
    SnpCollateral,
    verify,
    verify_evidence,
)


def _self_signed(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA384())
    )


def test_sample_verifies_with_expected_fields(report, collateral, snp_case, snp_now):
    claims = verify_evidence(report, now=snp_now, collateral=collateral)

    assert claims.tee == "sev-snp"
    assert claims.measurement == snp_case["measurement"]
    assert claims.report_data.hex() == snp_case["report_data"]
    assert claims.details["chip_id"] == snp_case["chip_id"]
    assert claims.details["reported_tcb"] == snp_case["reported_tcb"]
    assert claims.details["policy"] == snp_case["policy"]
    assert claims.details["tcb_microcode"] == "68"
    assert claims.tcb_status == SNP_TCB_STATUS
    assert claims.debug is True  # guest policy 0xb0000 sets bit 19, DEBUG allowed


def test_policy_accepts_sample_only_when_debug_and_status_allowed(
    report, collateral, snp_case, snp_now
):
    strict = Policy(
        allowed_measurements={snp_case["measurement"]}, accepted_tcb_statuses={SNP_TCB_STATUS}
    )
    relaxed = Policy(**{**strict.__dict__, "allow_debug": True, "allow_smt": True})

    with pytest.raises(AttestationError, match="DEBUG"):
        verify(report, strict, now=snp_now, collateral=collateral)
    claims = verify(report, relaxed, now=snp_now, collateral=collateral)

    assert claims.measurement == snp_case["measurement"]


@pytest.mark.parametrize("offset", [0x50, 0x90, 0x180, 0x29F])
def test_flipped_byte_fails(report, collateral, snp_now, offset):
    tampered = bytearray(report.raw)
    tampered[offset] ^= 0x01

    with pytest.raises(AttestationError) as info:
        verify_evidence(
            Evidence(tee="sev-snp", raw=bytes(tampered)), now=snp_now, collateral=collateral
        )

    assert info.value.code in {"signature", "chain"}


def test_wrong_vcek_fails(report, collateral, snp_now):
    other = _self_signed("SEV-VCEK")
    wrong = SnpCollateral(vcek=other, ask=collateral.ask, ark=collateral.ark)

    with pytest.raises(AttestationError) as info:
        verify_evidence(report, now=snp_now, collateral=wrong)

    assert info.value.code == "chain"


def test_chain_with_swapped_ask_and_ark_fails(report, collateral, snp_now):
    broken = SnpCollateral(vcek=collateral.vcek, ask=collateral.ark, ark=collateral.ask)

    with pytest.raises(AttestationError, match="ARK is not a pinned AMD root"):
        verify_evidence(report, now=snp_now, collateral=broken)


def test_chain_with_foreign_ask_fails(report, collateral, snp_now):
    broken = SnpCollateral(vcek=collateral.vcek, ask=_self_signed("SEV-Milan"), ark=collateral.ark)

    with pytest.raises(AttestationError, match="broken at the ASK"):
        verify_evidence(report, now=snp_now, collateral=broken)


def test_unpinned_self_signed_root_fails(report, collateral, snp_now):
    fake_root = _self_signed("ARK-Milan")
    broken = SnpCollateral(vcek=collateral.vcek, ask=collateral.ask, ark=fake_root)

    with pytest.raises(AttestationError, match="not a pinned AMD root"):
        verify_evidence(report, now=snp_now, collateral=broken)


@pytest.mark.parametrize(
    "now", [datetime(2022, 9, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)]
)
def test_outside_vcek_validity_fails_as_expired(report, collateral, now):
    with pytest.raises(AttestationError) as info:
        verify_evidence(report, now=now, collateral=collateral)

    assert info.value.code == "expired"


def test_truncated_report_fails(report, collateral, snp_now):
    with pytest.raises(AttestationError, match="1184 bytes"):
        verify_evidence(
            Evidence(tee="sev-snp", raw=report.raw[:-1]), now=snp_now, collateral=collateral
        )
