"""The owner's own budget ledger: reserve before approving, refuse beyond the budget, settle
by the enclave's receipt (refund only when the function never ran)."""

from __future__ import annotations

from pathlib import Path

import pytest

from teeflow.client import ClientError
from teeflow.client._ledger import PrivacyLedger
from teeflow.crypto import SigningKey
from teeflow.enclave.policies import DatasetPolicy, sign_policy


def _ledger(tmp_path: Path, epsilon: float = 2.0) -> PrivacyLedger:
    ledger = PrivacyLedger(tmp_path)
    policy = DatasetPolicy(
        owner="bank", ciphertext_sha256="ab" * 32, dp_epsilon=epsilon, dp_delta=1e-5
    )
    ledger.set_policy("d1", sign_policy(policy, SigningKey.generate()))
    return ledger


def _reserve(ledger: PrivacyLedger, chash: str, epsilon: float) -> tuple[float, float, int]:
    return ledger.reserve(
        "d1", task_id=chash, contract_hash=chash, slot="data", spend=(epsilon, 1e-6)
    )


def test_spends_count_from_approval_and_the_budget_is_a_hard_limit(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    version = ledger.remaining("d1")[2]

    first = _reserve(ledger, "c1", 1.5)
    again = _reserve(ledger, "c1", 1.5)  # the same approval, asked twice: counted once

    assert first[0] == 2.0 and again == first
    assert ledger.remaining("d1")[0] == pytest.approx(0.5)
    with pytest.raises(ClientError, match="rule 'budget'"):
        _reserve(ledger, "c2", 0.6)
    assert first[2] == version + 1  # the version the owner signs includes this spend
    assert ledger.remaining("d1")[2] == first[2]  # a refusal changes nothing


def test_refund_only_when_the_function_never_ran(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _reserve(ledger, "refused", 1.0)
    _reserve(ledger, "ran", 0.5)

    assert ledger.settle("d1", "refused", {"function_ran": False, "spent": {}}) == "refunded"
    spent = {"data": {"epsilon": 0.4, "delta": 1e-6}}
    assert ledger.settle("d1", "ran", {"function_ran": True, "spent": spent}) == "spent"
    # A later "never ran" receipt for a contract that ran refunds nothing.
    assert ledger.settle("d1", "ran", {"function_ran": False, "spent": {}}) == "spent"

    assert ledger.remaining("d1")[0] == pytest.approx(2.0 - 0.4)


def test_a_receipt_never_raises_a_spend_above_what_was_approved(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _reserve(ledger, "c1", 0.5)

    ledger.settle("d1", "c1", {"function_ran": True, "spent": {"data": {"epsilon": 9.0}}})

    assert ledger.remaining("d1")[0] == pytest.approx(1.5)
