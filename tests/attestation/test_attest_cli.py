"""``teeflow attest`` and ``teeflow enclave`` through Typer's CliRunner."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeflow.attestation import SimQuotingKey, report_data_for, sim_measurement
from teeflow.cli.main import app

runner = CliRunner()
SGX = ["sgx/phala_sgx_quote_v3.bin", "sgx/phala_sgx_quote_v3.collateral.json"]
MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"


def _policy(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(fields))
    return path


def _sgx_args(testdata: Path, quote: Path | None = None) -> list[str]:
    return [
        "attest", "verify", str(quote or testdata / SGX[0]),
        "--collateral", str(testdata / SGX[1]), "--at", "2025-07-01T00:00:00Z",
    ]  # fmt: skip


def test_verify_accepts_with_matching_policy(testdata, tmp_path):
    policy = _policy(
        tmp_path,
        allowed_measurements=[MRENCLAVE],
        accepted_tcb_statuses=["ConfigurationAndSWHardeningNeeded"],
    )

    result = runner.invoke(app, [*_sgx_args(testdata), "--policy", str(policy)])

    assert result.exit_code == 0, result.output
    assert "ACCEPTED" in result.output
    assert MRENCLAVE in result.output


def test_verify_rejects_with_default_policy_and_one_line_reason(testdata):
    result = runner.invoke(app, _sgx_args(testdata))

    assert result.exit_code == 1
    verdict = result.output.strip().splitlines()[-1]
    assert verdict.startswith("REJECTED: policy rejected the evidence: TCB status")


def test_verify_json_output_parses(testdata, tmp_path):
    policy = _policy(tmp_path, allowed_measurements=[MRENCLAVE])

    result = runner.invoke(app, [*_sgx_args(testdata), "--policy", str(policy), "--json"])

    out = json.loads(result.output)
    assert result.exit_code == 1
    assert out["verdict"] == "rejected"
    assert out["code"] == "policy"
    assert out["claims"]["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


@pytest.mark.parametrize("prefix", ["", "0x"])
def test_verify_accepts_hex_quote_files(testdata, tmp_path, prefix):
    hex_file = tmp_path / "quote.hex"
    hex_file.write_text(prefix + (testdata / SGX[0]).read_bytes().hex() + "\n")

    result = runner.invoke(app, [*_sgx_args(testdata, hex_file), "--json"])

    assert json.loads(result.output)["claims"]["measurement"] == MRENCLAVE


def test_verify_expired_collateral_fails_without_claims(testdata):
    args = _sgx_args(testdata)
    args[-1] = "2026-01-01T00:00:00Z"

    result = runner.invoke(app, [*args, "--json"])

    out = json.loads(result.output)
    assert result.exit_code == 1
    assert out["code"] == "expired"
    assert out["claims"] is None


def test_verify_sev_snp_with_vcek_and_chain(testdata, tmp_path):
    measurement = json.loads((testdata / "expected.json").read_text())["snp_cases"][0][
        "measurement"
    ]
    policy = _policy(
        tmp_path, allowed_measurements=[measurement], accepted_tcb_statuses=["NotEvaluated"],
        allow_debug=True, allow_smt=True,  # the sample's guest runs with SMT enabled
    )  # fmt: skip

    result = runner.invoke(
        app,
        [
            "attest", "verify", str(testdata / "sev-snp/gosev_milan_attestation_report.bin"),
            "--vcek", str(testdata / "sev-snp/gosev_milan_vcek.der"),
            "--chain", str(testdata / "sev-snp/amd_ask_ark_milan.pem"),
            "--at", "2026-03-01T00:00:00Z", "--policy", str(policy),
        ],
    )  # fmt: skip

    assert result.exit_code == 0, result.output


def test_verify_sim_evidence(tmp_path):
    key = SimQuotingKey.load_or_create(tmp_path / "key")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    evidence = key.quote(report_data_for(b"k"), measurement=sim_measurement(), now=now)
    (tmp_path / "ev.json").write_text(json.dumps(evidence.to_json()))
    policy = _policy(
        tmp_path, allowed_measurements=[sim_measurement()], allow_simulated=True,
        sim_quoting_keys=[key.public_key_hex],
    )  # fmt: skip

    result = runner.invoke(
        app,
        [
            "attest",
            "verify",
            str(tmp_path / "ev.json"),
            "--at",
            now.isoformat(),
            "--policy",
            str(policy),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output


def test_measure_prints_the_sim_measurement():
    plain = runner.invoke(app, ["attest", "measure"])
    as_json = runner.invoke(app, ["attest", "measure", "--json"])

    assert plain.output.strip() == sim_measurement()
    assert json.loads(as_json.output)["measurement"] == sim_measurement()


def test_enclave_manifest_writes_valid_toml(tmp_path):
    out = tmp_path / "teeflow.manifest.template"

    result = runner.invoke(app, ["enclave", "manifest", "--tee", "sgx", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert tomllib.loads(out.read_text())["sgx"]["remote_attestation"] == "dcap"


def test_enclave_manifest_refuses_other_tees():
    result = runner.invoke(app, ["enclave", "manifest", "--tee", "tdx"])

    assert result.exit_code == 2
