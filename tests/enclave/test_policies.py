"""Dataset policies and budget statements as the enclave checks them (enclave/policies.py,
enclave/budget.py): each rule is refused by name, and a policy or statement that is not the
owner's, or not for this dataset or contract, is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from teeflow.crypto import SigningKey, b64d, b64e
from teeflow.enclave.budget import budget_slot, check_budgets, sign_budget_statement
from teeflow.enclave.contract import contract_hash
from teeflow.enclave.policies import (
    DatasetPolicy,
    PolicyViolation,
    aggregate_threshold,
    check_policies,
    sign_policy,
)

BANK, ALICE = SigningKey.generate(), SigningKey.generate()
DIGEST = "ab" * 32


def _contract(policy: DatasetPolicy | None, **changes: Any) -> dict[str, Any]:
    contract: dict[str, Any] = {
        "task_id": "t1",
        "function": {"kind": "builtin", "name": "tabular-train", "code_sha256": "cd" * 32},
        "participants": {
            "bank": {"sign_pk": BANK.verify_key.b64(), "enc_pk": "x"},
            "alice": {"sign_pk": ALICE.verify_key.b64(), "enc_pk": "x"},
        },
        "inputs": {"data": {"dataset_id": "d1", "owners": ["bank"], "ciphertext_sha256": DIGEST}},
        "arguments": {},
        "outputs": {"metrics": {"recipients": ["bank"]}},
        "disclosure": {"errors": ["bank"]},
    }
    if policy is not None:
        contract["inputs"]["data"]["policy"] = sign_policy(policy, BANK)
    contract.update(changes)
    return contract


def _policy(**rules: Any) -> DatasetPolicy:
    return DatasetPolicy(owner="bank", ciphertext_sha256=DIGEST, **rules)


def _rule(contract: dict[str, Any]) -> str:
    with pytest.raises(PolicyViolation) as refused:
        check_policies(contract)
    return refused.value.rule


def test_a_task_within_the_policy_passes_and_sets_the_threshold() -> None:
    contract = _contract(_policy(functions=("tabular-train",), recipients=(), min_rows=25))

    assert set(check_policies(contract)) == {"data"}
    assert aggregate_threshold(contract) == 25
    assert aggregate_threshold(_contract(None)) == 0


def test_each_rule_is_refused_by_name() -> None:
    echo = {"kind": "builtin", "name": "echo", "code_sha256": "ee" * 32}
    to_alice = {"metrics": {"recipients": ["alice"]}}

    assert _rule(_contract(_policy(functions=("psi",)))) == "functions"
    assert _rule(_contract(_policy(recipients=()), outputs=to_alice)) == "recipients"
    assert _rule(_contract(_policy(recipients=()), disclosure={"progress": ["alice"]})) == (
        "recipients"
    )
    assert _rule(_contract(_policy(raw_rows=False), function=echo)) == "raw_rows"
    assert _rule(_contract(_policy(dp_epsilon=1.0, dp_delta=1e-5))) == "dp"  # no DP declared
    over = {"dp": {"epsilon": 2.0, "delta": 1e-6}}
    assert _rule(_contract(_policy(dp_epsilon=1.0, dp_delta=1e-5), arguments=over)) == "dp"


def test_an_uploaded_function_is_allowed_by_its_code_hash_only() -> None:
    uploaded = {"kind": "uploaded", "name": "tabular-train", "code_sha256": "ff" * 32}

    assert _rule(_contract(_policy(functions=("tabular-train",)), function=uploaded)) == (
        "functions"
    )
    assert check_policies(_contract(_policy(functions=("sha256:" + "ff" * 32,)), function=uploaded))


def test_a_tampered_or_foreign_policy_is_refused() -> None:
    contract = _contract(_policy(functions=("psi",)))
    loosened = copy.deepcopy(contract)
    loosened["inputs"]["data"]["policy"]["policy"]["functions"] = None
    by_alice = _contract(None)
    by_alice["inputs"]["data"]["policy"] = sign_policy(_policy(), ALICE)
    other = _contract(None)
    other["inputs"]["data"]["policy"] = sign_policy(
        DatasetPolicy(owner="bank", ciphertext_sha256="00" * 32), BANK
    )

    assert _rule(loosened) == "signature"
    assert _rule(by_alice) == "signature"
    assert _rule(other) == "signature"


def _statement(contract: dict[str, Any], remaining: float, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "contract_hash": contract_hash(contract),
        "slot": "data",
        "ciphertext_sha256": DIGEST,
        "ledger_version": 3,
        "remaining": (remaining, 1e-5),
        "spend": (1.0, 1e-6),
        "key": BANK,
    }
    fields.update(changes)
    return sign_budget_statement(**fields)


def test_budget_statement_must_cover_the_spend_and_be_for_this_contract() -> None:
    dp = {"dp": {"epsilon": 1.0, "delta": 1e-6}}
    contract = _contract(_policy(dp_epsilon=3.0, dp_delta=1e-5), arguments=dp)
    chash = contract_hash(contract)
    policies = check_policies(contract)

    def check(text: str | None) -> dict[str, Any]:
        keys = {} if text is None else {budget_slot("data"): text}
        return check_budgets(contract, chash, policies, {"bank": {"wrapped_keys": keys}})

    assert check(_statement(contract, 1.5)) == {"data": {"epsilon": 1.0, "delta": 1e-6}}
    for bad, words in [
        (None, "no signed remaining budget"),
        (_statement(contract, 0.5), "remaining budget at ledger version 3"),
        (_statement(contract, 2.0, contract_hash="00" * 32), "for another task"),
        (_statement(contract, 2.0, key=ALICE), "does not verify"),
        (b64e(b64d(_statement(contract, 2.5)).replace(b"2.5", b"9.5")), "does not verify"),
    ]:
        with pytest.raises(PolicyViolation, match=words) as refused:
            check(bad)
        assert refused.value.rule == "budget"


def test_malformed_dp_arguments_are_refused_without_any_policy() -> None:
    bad = {"dp": {"epsilon": float("inf"), "delta": 1e-6}}

    assert _rule(_contract(None, arguments=bad)) == "dp"
    assert check_policies(_contract(None, arguments={"dp": {"epsilon": 1, "delta": 0}})) == {}
