"""Policy files, defaults and the exported surface."""

from __future__ import annotations

import json

import pytest

import teeflow.attestation as attestation
from teeflow.attestation import AttestationError, Evidence, Policy


def test_defaults_fail_closed():
    policy = Policy()

    assert policy.accepted_tcb_statuses == {"UpToDate"}
    assert not policy.allow_debug
    assert not policy.allow_simulated
    assert not policy.allowed_measurements


def test_json_and_toml_files_load_to_the_same_policy(tmp_path):
    (tmp_path / "p.json").write_text(
        json.dumps({"allowed_measurements": ["0xAB" + "00" * 31], "allow_debug": True})
    )
    (tmp_path / "p.toml").write_text(
        'allowed_measurements = ["ab' + "00" * 31 + '"]\nallow_debug = true\n'
    )

    from_json = Policy.from_file(tmp_path / "p.json")
    from_toml = Policy.from_file(tmp_path / "p.toml")

    assert from_json == from_toml
    assert Policy.from_dict(from_json.to_dict()) == from_json


def test_unknown_policy_field_is_an_error(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"allow_simulted": True}))

    with pytest.raises(AttestationError, match="unknown policy field"):
        Policy.from_file(tmp_path / "p.json")


def test_string_for_boolean_is_an_error():
    with pytest.raises(AttestationError, match="true or false"):
        Policy.from_dict({"allow_debug": "false"})


def test_evidence_json_round_trip():
    evidence = Evidence(tee="tdx", raw=b"\x00\x01quote")

    assert Evidence.from_json(evidence.to_json()) == evidence
    with pytest.raises(AttestationError):
        Evidence.from_json({"tee": "tpm", "raw": "AA=="})


def test_public_surface():
    assert set(attestation.__all__) >= {
        "AttestationError",
        "Claims",
        "Evidence",
        "Policy",
        "SimQuotingKey",
        "check_binding",
        "get_provider",
        "render_gramine_manifest",
        "report_data_for",
        "sim_measurement",
        "verify",
    }
    assert all(hasattr(attestation, name) for name in attestation.__all__)
