"""Reading an enclave's own measurement from its own evidence (the boot path on real TEEs),
checked against the fields the full verifiers report for the real vectors in ../shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import AttestationError, Evidence, read_report


def _case(expected: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in expected["dcap_cases"] + expected["snp_cases"] if c["case"] == name)


def test_sgx_quote_fields(testdata: Path, expected: dict[str, Any]) -> None:
    case = _case(expected, "sgx_phala_v3")
    fields = read_report(Evidence("sgx", (testdata / case["quote"]).read_bytes()))
    assert fields.measurement == case["mr_enclave"]
    assert fields.measurements["mrsigner"] == case["mr_signer"]
    assert fields.report_data.hex() == case["report_data"]
    assert fields.debug is bool(bytes.fromhex(case["attributes"])[0] & 0x02)


@pytest.mark.parametrize("name", ["tdx_phala_v4", "tdx_gotdx_SPR_E4_v4"])
def test_tdx_quote_fields(testdata: Path, expected: dict[str, Any], name: str) -> None:
    case = _case(expected, name)
    fields = read_report(Evidence("tdx", (testdata / case["quote"]).read_bytes()))
    assert fields.measurement == case["mr_td"]
    assert fields.measurements["rtmr0"] == case["rtmr0"]
    assert fields.measurements["mr_seam"] == case["mr_seam"]
    assert fields.report_data.hex() == case["report_data"]
    assert fields.debug is bool(bytes.fromhex(case["td_attributes"])[0] & 0x01)


def test_snp_report_fields(testdata: Path, expected: dict[str, Any]) -> None:
    case = _case(expected, "snp_gosev_milan")
    fields = read_report(Evidence("sev-snp", (testdata / case["report"]).read_bytes()))
    assert fields.measurement == case["measurement"]
    assert fields.report_data.hex() == case["report_data"]
    assert fields.debug is bool(int(case["policy"], 16) & (1 << 19))


@pytest.mark.parametrize("tee", ["sgx", "tdx", "sev-snp"])
def test_truncated_evidence_is_refused(tee: str) -> None:
    with pytest.raises(AttestationError, match="truncated"):
        read_report(Evidence(tee, b"\x04" * 100))  # type: ignore[arg-type]
