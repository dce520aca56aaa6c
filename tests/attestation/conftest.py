"""Shared fixtures: the real attestation vectors in ../shared/testdata/attestation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import Evidence, SnpCollateral

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "attestation"


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not (TESTDATA / "expected.json").is_file():
        pytest.skip(f"attestation test vectors not found at {TESTDATA} (shared/testdata missing)")
    return TESTDATA


@pytest.fixture(scope="session")
def expected(testdata: Path) -> dict[str, Any]:
    return json.loads((testdata / "expected.json").read_text())


@pytest.fixture(scope="session")
def snp_now() -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC)


# The real Milan SEV-SNP sample (go-sev-guest) and its VCEK + AMD chain.
@pytest.fixture
def snp_case(expected: dict[str, Any]) -> dict[str, Any]:
    return expected["snp_cases"][0]


@pytest.fixture
def report(testdata: Path, snp_case: dict[str, Any]) -> Evidence:
    return Evidence(tee="sev-snp", raw=(testdata / snp_case["report"]).read_bytes())


@pytest.fixture
def collateral(testdata: Path, snp_case: dict[str, Any]) -> SnpCollateral:
    return SnpCollateral.from_files(
        vcek=testdata / snp_case["vcek"], chain=testdata / snp_case["ask_ark"]
    )
