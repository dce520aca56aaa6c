"""The key service on REAL evidence: the SGX and TDX DCAP quotes and the SEV-SNP report in
../shared/testdata/attestation, verified with their real collateral from a collateral directory
(offline, no network), under the service's policy and the participants' allow-list.

Those quotes were made for someone else's report_data, so none can bind our nonce and key: the
best a real quote can reach is a refusal for ``binding``, which proves every check before it
passed on real hardware evidence. The accept path (a release) is tested on the fake hardware root
(test_key_release.py, test_tee_executors.py), not here.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import (
    AttestationError,
    DirectoryCollateral,
    Evidence,
    FetchingCollateral,
    Policy,
    hardware_verifier,
    snp_vcek_name,
    strip_quote_padding,
)
from teeflow.attestation._pccs import collateral_file_name
from teeflow.attestation._snp_report import parse_report
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.enclave.keyrelease import PROTOCOL_VERSION, TEE_NAMES, b64url, jwk_x25519
from teeflow.enclave.keyservice import KeyReleaseRefused, KeyService
from teeflow.keyservice.__main__ import collateral_source, parser

from .conftest import signed_allow_list

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "attestation"


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    if not (TESTDATA / "expected.json").is_file():
        pytest.skip(f"attestation test vectors not found at {TESTDATA} (shared/testdata missing)")
    data: dict[str, Any] = json.loads((TESTDATA / "expected.json").read_text())
    return data


class Real:
    """One real piece of evidence, its measurement, and the instant its collateral is valid."""

    def __init__(self, evidence: Evidence, measurement: str, now: datetime) -> None:
        self.evidence, self.measurement, self.now = evidence, measurement, now


def _real(expected: dict[str, Any], tee: str, collateral_dir: Path) -> Real:
    """Load the real evidence for ``tee`` and put its collateral in ``collateral_dir`` (a test
    tmp dir, laid out as DirectoryCollateral reads it)."""
    if tee == "sev-snp":
        case = expected["snp_cases"][0]
        raw = (TESTDATA / case["report"]).read_bytes()
        (collateral_dir / "snp").mkdir(parents=True, exist_ok=True)
        shutil.copy(TESTDATA / case["vcek"], collateral_dir / "snp" / snp_vcek_name(raw))
        shutil.copy(TESTDATA / case["ask_ark"], collateral_dir / "snp" / "cert_chain.pem")
        return Real(Evidence("sev-snp", raw), case["measurement"], datetime(2026, 3, 1, tzinfo=UTC))
    name = {"sgx": "sgx_phala_v3", "tdx": "tdx_phala_v4"}[tee]
    case = next(c for c in expected["dcap_cases"] if c["case"] == name)
    raw = strip_quote_padding((TESTDATA / case["quote"]).read_bytes())
    target = collateral_dir / "dcap" / collateral_file_name(raw)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTDATA / case["collateral"], target)
    measurement = case["mr_enclave"] if tee == "sgx" else case["mr_td"]
    now = datetime.fromisoformat(case["now"]).astimezone(UTC)
    return Real(Evidence(tee, raw), measurement, now)  # type: ignore[arg-type]


# A policy that accepts each real sample's platform (its TCB status, flags, SNP debug guest), so
# each test can break exactly one thing.
ACCEPTING = Policy(
    allowed_tees=frozenset({"sgx", "tdx", "sev-snp"}),
    accepted_tcb_statuses=frozenset({"UpToDate", "ConfigurationAndSWHardeningNeeded",
                                     "NotEvaluated"}),
    allow_debug=True, allow_dynamic_platform=True, allow_cached_keys=True, allow_smt=True,
)  # fmt: skip


@pytest.fixture
def real_service(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    expected: dict[str, Any],
    tmp_path: Path,
) -> Callable[..., tuple[KeyService, Real, list[dict[str, Any]]]]:
    def make(
        tee: str, *, policy: Policy = ACCEPTING, allow: bool = True
    ) -> tuple[KeyService, Real, list[dict[str, Any]]]:
        collateral = tmp_path / "collateral"
        real = _real(expected, tee, collateral)
        records: list[dict[str, Any]] = []
        svc = make_service(
            policy=policy, records=records, clock=lambda: real.now,
            verifier=hardware_verifier(DirectoryCollateral(collateral)),
        )  # fmt: skip
        measurement = real.measurement if allow else "ee" * (len(real.measurement) // 2)
        svc.set_allow_list(signed_allow_list(participants, [(tee, measurement, 1)], version=1))
        return svc, real, records

    return make


def _attest(service: KeyService, evidence: Evidence) -> None:
    """Request + Attestation with ``evidence`` and a fresh ephemeral key (as an executor would)."""
    session, _challenge = service.auth(
        {"version": PROTOCOL_VERSION, "tee": TEE_NAMES[evidence.tee],
         "extra-params": {"client-nonce": b64url(os.urandom(32))}}
    )  # fmt: skip
    tee_pubkey = jwk_x25519(PrivateKey.generate().public_key)
    service.attest(session, {"tee-pubkey": tee_pubkey, "tee-evidence": evidence.to_json()})


@pytest.mark.parametrize("tee", ["sgx", "tdx", "sev-snp"])
def test_real_evidence_not_binding_the_nonce_is_refused_for_binding(
    real_service: Callable[..., Any], tee: str
) -> None:
    service, real, records = real_service(tee)
    with pytest.raises(KeyReleaseRefused, match="not bound to this public key") as caught:
        _attest(service, real.evidence)
    assert caught.value.code == "binding"
    refused = [r for r in records if r["action"] == "key.release.refused"]
    assert refused[-1]["code"] == "binding" and refused[-1]["measurement"] == real.measurement


@pytest.mark.parametrize("tee", ["sgx", "tdx", "sev-snp"])
def test_real_evidence_off_the_allow_list_is_refused(
    real_service: Callable[..., Any], tee: str
) -> None:
    service, real, _ = real_service(tee, allow=False)
    with pytest.raises(KeyReleaseRefused, match="not in allowed_measurements") as caught:
        _attest(service, real.evidence)
    assert caught.value.code == "not-allowed"


def test_real_sgx_quote_with_a_tcb_below_the_policy_is_refused(
    real_service: Callable[..., Any],
) -> None:
    # The sample platform is ConfigurationAndSWHardeningNeeded; this policy wants UpToDate.
    strict = Policy(**{**ACCEPTING.__dict__, "accepted_tcb_statuses": frozenset({"UpToDate"})})
    service, real, _ = real_service("sgx", policy=strict)
    with pytest.raises(KeyReleaseRefused, match="TCB status ConfigurationAndSWHardeningNeeded"):
        _attest(service, real.evidence)


def test_real_snp_report_below_the_tcb_minimum_is_refused(
    real_service: Callable[..., Any], expected: dict[str, Any]
) -> None:
    raw = (TESTDATA / expected["snp_cases"][0]["report"]).read_bytes()
    reported = parse_report(raw).tcb_levels["snp"]
    minimum = Policy(**{**ACCEPTING.__dict__, "min_snp_tcb": {"snp": reported + 1}})
    service, real, _ = real_service("sev-snp", policy=minimum)
    with pytest.raises(KeyReleaseRefused, match="snp") as caught:
        _attest(service, real.evidence)
    assert caught.value.code == "policy"


def test_real_snp_debug_guest_is_refused(real_service: Callable[..., Any]) -> None:
    # The go-sev-guest sample's guest policy (0xb0000) has the DEBUG bit set.
    no_debug = Policy(**{**ACCEPTING.__dict__, "allow_debug": False})
    service, real, _ = real_service("sev-snp", policy=no_debug)
    with pytest.raises(KeyReleaseRefused, match="DEBUG") as caught:
        _attest(service, real.evidence)
    assert caught.value.code == "policy"


def test_real_quote_without_collateral_is_refused_saying_where_to_put_it(
    make_service: Callable[..., KeyService],
    participants: list[SigningKey],
    expected: dict[str, Any],
    tmp_path: Path,
) -> None:
    real = _real(expected, "tdx", tmp_path / "elsewhere")
    service = make_service(
        policy=ACCEPTING, clock=lambda: real.now,
        verifier=hardware_verifier(DirectoryCollateral(tmp_path / "empty")),
    )  # fmt: skip
    service.set_allow_list(
        signed_allow_list(participants, [("tdx", real.measurement, 1)], version=1)
    )
    with pytest.raises(KeyReleaseRefused, match=r"no DCAP collateral .* PCCS URL") as caught:
        _attest(service, real.evidence)
    assert caught.value.code == "evidence"


def test_altered_real_quote_is_refused_as_evidence(real_service: Callable[..., Any]) -> None:
    service, real, _ = real_service("tdx")
    raw = bytearray(real.evidence.raw)
    raw[600] ^= 1  # inside the signed TD report
    with pytest.raises(KeyReleaseRefused, match="does not verify") as caught:
        _attest(service, Evidence("tdx", bytes(raw)))
    assert caught.value.code == "evidence"


def test_fetched_snp_collateral_is_asked_of_kds_once_and_cached(
    expected: dict[str, Any], tmp_path: Path
) -> None:
    """FetchingCollateral with a stand-in for AMD KDS (no network in tests): the VCEK is asked
    for by CHIP_ID and REPORTED_TCB, cached, and the real report then verifies with it."""
    case = expected["snp_cases"][0]
    raw = (TESTDATA / case["report"]).read_bytes()
    asked: list[str] = []

    def kds(path: str) -> bytes:
        asked.append(path)
        name = case["ask_ark"] if path.endswith("/cert_chain") else case["vcek"]
        return (TESTDATA / name).read_bytes()

    def no_pccs(raw_quote: bytes) -> str:
        raise AssertionError("an SEV-SNP report needs no DCAP collateral")

    source = FetchingCollateral(tmp_path / "cache", dcap=no_pccs, kds=kds)
    verify = hardware_verifier(source)
    now = datetime(2026, 3, 1, tzinfo=UTC)

    first = verify(Evidence("sev-snp", raw), now)
    verify(Evidence("sev-snp", raw), now)

    levels = parse_report(raw).tcb_levels
    assert first.measurement == case["measurement"]
    assert asked == [
        f"/vcek/v1/Milan/{parse_report(raw).chip_id.hex()}?blSPL={levels['bootloader']}"
        f"&teeSPL={levels['tee']}&snpSPL={levels['snp']}&ucodeSPL={levels['microcode']}",
        "/vcek/v1/Milan/cert_chain",
    ]


def test_without_a_collateral_source_hardware_evidence_is_refused(
    expected: dict[str, Any], tmp_path: Path
) -> None:
    real = _real(expected, "sgx", tmp_path / "unused")
    with pytest.raises(AttestationError, match="no collateral source for sgx evidence"):
        hardware_verifier(None)(real.evidence, real.now)


def test_the_key_service_takes_its_collateral_source_from_its_arguments(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path), "--policy", "p", "--signers", "s"]
    assert collateral_source(parser().parse_args(base)) is None
    offline = parser().parse_args([*base, "--collateral-dir", str(tmp_path / "c")])
    assert isinstance(collateral_source(offline), DirectoryCollateral)
    online = parser().parse_args([*base, "--pccs-url", "https://pccs.example:8081"])
    assert isinstance(collateral_source(online), FetchingCollateral)
