"""The sim TEE: measurement, quoting key, and that simulated evidence is never a bypass."""

from __future__ import annotations

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import teeflow
from teeflow.attestation import (
    AttestationError,
    Evidence,
    Policy,
    SimQuotingKey,
    check_binding,
    report_data_for,
    sim_measurement,
    sim_measurement_inputs,
    verify,
)
from teeflow.crypto import canonical_json

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
BUNDLE = b"enclave public key bundle (SPKI DER)"
NONCE = bytes(range(32))


@pytest.fixture
def key(tmp_path: Path) -> SimQuotingKey:
    return SimQuotingKey.load_or_create(tmp_path / "sim")


@pytest.fixture
def evidence(key: SimQuotingKey) -> Evidence:
    return key.quote(report_data_for(BUNDLE, NONCE), measurement=sim_measurement(), now=NOW)


def _policy(key: SimQuotingKey, **overrides: Any) -> Policy:
    fields: dict[str, Any] = {
        "allowed_measurements": {sim_measurement()},
        "allow_simulated": True,
        "sim_quoting_keys": {key.public_key_hex},
    }
    fields.update(overrides)
    return Policy(**fields)


def test_sim_evidence_verifies_with_allow_simulated_and_pinned_key(key, evidence):
    claims = verify(evidence, _policy(key), now=NOW)

    assert claims.simulated is True
    assert claims.tee == "sim"
    assert claims.measurement == sim_measurement()
    check_binding(claims, BUNDLE, NONCE)


def test_sim_evidence_rejected_without_allow_simulated(key, evidence):
    with pytest.raises(AttestationError, match="SIMULATED") as info:
        verify(evidence, _policy(key, allow_simulated=False), now=NOW)

    assert info.value.code == "policy"


def test_sim_evidence_rejected_without_pinned_key(key, evidence):
    with pytest.raises(AttestationError, match="does not pin"):
        verify(evidence, _policy(key, sim_quoting_keys=set()), now=NOW)


def test_evidence_signed_by_another_key_fails(tmp_path, key):
    other = SimQuotingKey.load_or_create(tmp_path / "other")
    forged = other.quote(report_data_for(BUNDLE), measurement=sim_measurement(), now=NOW)

    with pytest.raises(AttestationError, match="does not pin"):
        verify(forged, _policy(key), now=NOW)


def test_other_key_claiming_the_pinned_key_fails(tmp_path, key):
    other = SimQuotingKey.load_or_create(tmp_path / "other")
    forged = json.loads(other.quote(report_data_for(BUNDLE), measurement="aa" * 32, now=NOW).raw)
    forged["claims"]["quoting_key"] = key.public_key_hex

    with pytest.raises(AttestationError, match="signature is invalid"):
        verify(Evidence(tee="sim", raw=canonical_json(forged)), _policy(key), now=NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("measurement", "00" * 32),
        ("report_data", "11" * 64),
        ("expires_at", "2099-01-01T00:00:00+00:00"),
        ("debug", True),
    ],
)
def test_edited_claims_fail(key, evidence, field, value):
    doc = json.loads(evidence.raw)
    doc["claims"][field] = value

    with pytest.raises(AttestationError, match="signature is invalid"):
        verify(Evidence(tee="sim", raw=canonical_json(doc)), _policy(key), now=NOW)


@pytest.mark.parametrize("shift", [timedelta(seconds=-1), timedelta(hours=1, seconds=1)])
def test_sim_quote_outside_its_window_fails(key, evidence, shift):
    with pytest.raises(AttestationError) as info:
        verify(evidence, _policy(key), now=NOW + shift)

    assert info.value.code == "expired"


def test_report_data_binding_mismatch_fails(key, evidence):
    claims = verify(evidence, _policy(key), now=NOW)

    with pytest.raises(AttestationError, match="not bound to this public key bundle"):
        check_binding(claims, b"someone else's keys", NONCE)
    with pytest.raises(AttestationError, match="nonce does not match"):
        check_binding(claims, BUNDLE, bytes(32))


def test_report_data_layout():
    data = report_data_for(BUNDLE)

    assert len(data) == 64
    assert data[32:] == bytes(32)
    assert report_data_for(BUNDLE, NONCE)[32:] == NONCE


def test_changing_a_trusted_file_changes_the_measurement(tmp_path):
    package = tmp_path / "teeflow"
    shutil.copytree(
        Path(teeflow.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = sim_measurement(package)
    target = package / "crypto" / "_encoding.py"

    target.write_text(target.read_text() + "\n# changed\n")

    assert sim_measurement(package) != before
    assert before == sim_measurement()


def test_untrusted_file_does_not_change_the_measurement(tmp_path):
    package = tmp_path / "teeflow"
    shutil.copytree(
        Path(teeflow.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = sim_measurement(package)

    (package / "cli" / "extra.py").write_text("x = 1\n")

    assert sim_measurement(package) == before


def test_measurement_inputs_cover_trusted_packages_and_dependency_versions():
    inputs = sim_measurement_inputs()

    tops = {path.split("/")[0] for path, _ in inputs["files"]}
    assert tops <= {"enclave", "functions", "crypto", "attestation"}
    assert {"crypto", "attestation"} <= tops
    assert dict(inputs["dependencies"])["dcap-qvl"] == "0.7.0"


def test_quoting_key_file_is_private_and_reloads(tmp_path):
    first = SimQuotingKey.load_or_create(tmp_path / "k")

    again = SimQuotingKey.load_or_create(tmp_path / "k")

    mode = stat.S_IMODE((tmp_path / "k" / "sim-quoting-key").stat().st_mode)
    assert mode == 0o600
    assert again.public_key_hex == first.public_key_hex
    assert first.public_key_hex not in repr(first._key.to_bytes())


def test_world_readable_key_file_is_refused(tmp_path):
    SimQuotingKey.load_or_create(tmp_path / "k")
    (tmp_path / "k" / "sim-quoting-key").chmod(0o644)

    with pytest.raises(AttestationError, match="chmod 600"):
        SimQuotingKey.load_or_create(tmp_path / "k")
