"""Hypothesis-generated malformed input to the trusted layers gets their one documented error.

Sealed files fail with IntegrityError, attestation evidence with AttestationError, contracts with
ContractError: never another exception type, which in the enclave would be a crash instead of a
clear "refused because ...".
"""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from teeflow.attestation import (
    AttestationError,
    Evidence,
    Policy,
    SimQuotingKey,
    SnpCollateral,
    load_dcap_collateral,
    verify,
)
from teeflow.attestation._quote_layout import quote_layout
from teeflow.crypto import DataKey, IntegrityError, seal_bytes, unseal_bytes
from teeflow.enclave.contract import ContractError, validate_contract

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "attestation"
SETTINGS = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutate(data: st.DataObject, value: Any) -> Any:
    """``value`` (JSON) with one node replaced, deleted, or given an extra key."""
    value = copy.deepcopy(value)
    parent: Any = None
    key: Any = None
    node = value
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(
            st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
        )
        parent, node = node, node[key]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if parent is None:
        return data.draw(JSON) if action == "replace" else value
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(node, dict):
        node[data.draw(st.text(max_size=8))] = data.draw(JSON)
    else:
        parent[key] = data.draw(JSON)
    return value


# -- sealed files ------------------------------------------------------------------------------

KEY = DataKey(bytes(range(32)))


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_random_bytes_never_unseal(blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        unseal_bytes(blob, KEY)


@SETTINGS
@given(plaintext=st.binary(max_size=100), data=st.data())
def test_truncated_extended_or_edited_sealed_files_fail_integrity(
    plaintext: bytes, data: st.DataObject
) -> None:
    sealed = seal_bytes(plaintext, KEY, chunk_size=16)  # several chunks from little data
    edit = data.draw(st.sampled_from(["truncate", "extend", "flip", "cut", "random-tail"]))
    if edit == "truncate":
        bad = sealed[: data.draw(st.integers(0, len(sealed) - 1))]
    elif edit == "extend":
        bad = sealed + data.draw(st.binary(min_size=1, max_size=64))
    elif edit == "flip":
        at = data.draw(st.integers(0, len(sealed) - 1))
        bad = sealed[:at] + bytes([sealed[at] ^ data.draw(st.integers(1, 255))]) + sealed[at + 1 :]
    elif edit == "cut":
        start = data.draw(st.integers(0, len(sealed) - 1))
        end = data.draw(st.integers(start + 1, len(sealed)))
        bad = sealed[:start] + sealed[end:]
    else:  # a real header (right key id) in front of forged chunks
        bad = sealed[:37] + data.draw(st.binary(max_size=200))
    assume(bad != sealed)

    with pytest.raises(IntegrityError):
        unseal_bytes(bad, KEY)


# -- attestation evidence ----------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Policy, dict[str, Any]]:
    key = SimQuotingKey.load_or_create(tmp_path_factory.mktemp("platform"))
    policy = Policy(
        allowed_tees=frozenset({"sim"}),
        allow_simulated=True,
        sim_quoting_keys=frozenset({key.public_key_hex}),
        allowed_measurements=frozenset({"ab" * 32}),
        accepted_tcb_statuses=frozenset({"Simulated"}),
    )
    quote = key.quote(bytes(64), measurement="ab" * 32, now=NOW - timedelta(minutes=1))
    assert verify(quote, policy, now=NOW).measurement == "ab" * 32  # the unmutated quote passes
    return policy, json.loads(quote.raw)


@SETTINGS
@given(raw=st.binary(min_size=1, max_size=300))
def test_random_bytes_as_sim_evidence_are_refused(
    sim: tuple[Policy, dict[str, Any]], raw: bytes
) -> None:
    with pytest.raises(AttestationError):
        verify(Evidence(tee="sim", raw=raw), sim[0], now=NOW)


@SETTINGS
@given(data=st.data())
def test_mutated_sim_quotes_are_refused(
    sim: tuple[Policy, dict[str, Any]], data: st.DataObject
) -> None:
    policy, document = sim
    mutated = _mutate(data, document)
    assume(mutated != document)
    raw = json.dumps(mutated).encode()

    with pytest.raises(AttestationError):
        verify(Evidence(tee="sim", raw=raw), policy, now=NOW)


@pytest.mark.parametrize("depth", [100, 10_000, 100_000])
def test_deeply_nested_sim_evidence_is_refused(
    sim: tuple[Policy, dict[str, Any]], depth: int
) -> None:
    raw = b'{"claims": ' * depth + b"{}" + b"}" * depth
    with pytest.raises(AttestationError, match="malformed"):
        verify(Evidence(tee="sim", raw=raw), sim[0], now=NOW)


@SETTINGS
@given(document=JSON)
def test_evidence_json_of_any_shape_is_refused_or_parsed(document: Any) -> None:
    with contextlib.suppress(AttestationError):
        Evidence.from_json(document if isinstance(document, dict) else {"raw": document})


def _hardware_cases() -> list[tuple[str, str, Any, datetime]]:
    if not (TESTDATA / "expected.json").is_file():
        pytest.skip(f"attestation vectors not found at {TESTDATA} (shared/testdata missing)")
    expected = json.loads((TESTDATA / "expected.json").read_text())
    cases = []
    for case in expected["dcap_cases"][:2]:
        collateral = load_dcap_collateral(TESTDATA / case["collateral"])
        now = datetime.fromisoformat(case["now"]).astimezone(UTC)
        cases.append((case["tee"].lower(), case["quote"], collateral, now))
    snp = expected["snp_cases"][0]
    collateral = SnpCollateral.from_files(
        vcek=TESTDATA / snp["vcek"], chain=TESTDATA / snp["ask_ark"]
    )
    cases.append(("sev-snp", snp["report"], collateral, datetime(2026, 3, 1, tzinfo=UTC)))
    return cases


@pytest.fixture(scope="module")
def hardware() -> list[tuple[str, bytes, Any, datetime]]:
    def exact(tee: str, raw: bytes) -> bytes:
        # DCAP evidence must be exactly one quote; the TDX sample is zero-padded.
        return raw if tee == "sev-snp" else raw[: quote_layout(raw).length]

    return [
        (tee, exact(tee, (TESTDATA / f).read_bytes()), coll, now)
        for tee, f, coll, now in _hardware_cases()
    ]


# Accepts anything genuine: the mutations below must fail verification, not policy.
ANY_GENUINE = Policy(
    allowed_measurements=frozenset(),
    accepted_tcb_statuses=frozenset(
        {
            "UpToDate",
            "ConfigurationAndSWHardeningNeeded",
            "SWHardeningNeeded",
            "OutOfDate",
            "ConfigurationNeeded",
            "OutOfDateConfigurationNeeded",
            "SEV-SNP",
        }
    ),
    allow_dynamic_platform=True,
    allow_cached_keys=True,
    allow_smt=True,
)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_hardware_evidence_is_refused(
    hardware: list[tuple[str, bytes, Any, datetime]], data: st.DataObject
) -> None:
    tee, quote, collateral, now = data.draw(st.sampled_from(hardware))
    edit = data.draw(st.sampled_from(["flip", "truncate", "extend", "random"]))
    if edit == "flip":
        at = data.draw(st.integers(0, len(quote) - 1))
        raw = quote[:at] + bytes([quote[at] ^ data.draw(st.integers(1, 255))]) + quote[at + 1 :]
    elif edit == "truncate":
        raw = quote[: data.draw(st.integers(1, len(quote) - 1))]
    elif edit == "extend":
        raw = quote + data.draw(st.binary(min_size=1, max_size=64))
    else:
        raw = data.draw(st.binary(min_size=1, max_size=2000))

    try:
        verify(Evidence(tee=tee, raw=raw), ANY_GENUINE, now=now, collateral=collateral)
    except AttestationError:
        return
    assert edit != "extend", "bytes appended to evidence must be refused"
    # Appended bytes are always refused (evidence is exactly one quote), but a few bytes inside
    # a quote are covered by no signature (e.g. the text around its PEM certificates); such
    # evidence may verify, but must then say the same as the original.
    original = verify(Evidence(tee=tee, raw=quote), ANY_GENUINE, now=now, collateral=collateral)
    again = verify(Evidence(tee=tee, raw=raw), ANY_GENUINE, now=now, collateral=collateral)
    assert (again.measurement, again.report_data) == (original.measurement, original.report_data)


# -- contracts ---------------------------------------------------------------------------------

CONTRACT: dict[str, Any] = {
    "version": 2,
    "task_id": "0" * 32,
    "nonce": "1" * 32,
    "created_at": "2026-01-01T00:00:00+00:00",
    "expires_at": "2026-01-08T00:00:00+00:00",
    "creator": "alice",
    "description": "",
    "function": {
        "kind": "uploaded", "name": "score", "function_id": "f" * 32, "owner": "carol",
        "code_sha256": "a" * 64, "sealed": True, "source_dataset_id": "d" * 32,
        "source_sha256": "b" * 64,
    },
    "executor": {"tee": "sim", "measurement": "c" * 64,
                 "public_keys": {"x25519": "A", "ed25519": "B"}},
    "participants": {
        name: {"sign_pk": "AAAA", "enc_pk": "BBBB"} for name in ("alice", "bob", "carol", "dave")
    },
    "inputs": {
        "table": {"dataset_id": "e" * 32, "name": "t.csv", "kind": "table", "owners": ["bob"],
                  "ciphertext_sha256": "d" * 64, "joint": None},
        "model": {"dataset_id": "9" * 32, "name": "m", "kind": "model", "owners": ["bob", "dave"],
                  "ciphertext_sha256": "e" * 64,
                  "joint": {"task_id": "8" * 32, "contract_hash": "7" * 64, "slot": "model"}},
    },
    "arguments": {"epochs": 2, "lr": 0.1, "requesters": ["alice"]},
    "outputs": {"scores": {"recipients": ["alice"]}, "model": {"joint_owners": ["bob", "dave"]}},
    "disclosure": {"progress": ["alice"], "errors": ["alice", "bob"]},
}  # fmt: skip


def test_the_unmutated_contract_is_valid() -> None:
    validate_contract(CONTRACT)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_contracts_are_valid_or_refused_with_contract_error(data: st.DataObject) -> None:
    contract = _mutate(data, CONTRACT)
    assume(isinstance(contract, dict))
    with contextlib.suppress(ContractError):
        validate_contract(contract)
