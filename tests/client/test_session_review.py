"""What a review says about an inference session's limits (client/_session_review.py)."""

from __future__ import annotations

from typing import Any

from teeflow.client._session_review import session_review_lines


def _contract(function: str = "tabular-serve", **arguments: Any) -> dict[str, Any]:
    return {
        "function": {"kind": "builtin", "name": function},
        "inputs": {"model": {"owners": ["hospital"], "dataset_id": "m"}},
        "arguments": {"requesters": ["clinic"], **arguments},
    }


def test_every_participant_sees_the_limits_and_only_the_owner_is_warned() -> None:
    contract = _contract(max_requests=10**9, max_seconds=30 * 86_400)

    owner = session_review_lines(contract, "hospital")
    requester = session_review_lines(contract, "clinic")

    assert owner[0] == requester[0]
    assert "requesters ['clinic']" in owner[0] and "lifetime 30 day(s)" in owner[0]
    assert "probabilities full precision" in owner[0]
    assert [line.split(" ")[0] for line in owner[1:3]] == ["max_requests", "max_seconds"]
    assert "full precision" in owner[3]
    assert requester == requester[:1]


def test_modest_rounded_limits_raise_no_warning() -> None:
    lines = session_review_lines(_contract(decimals=2), "hospital")

    assert len(lines) == 1
    assert "100 rows a request" in lines[0] and "rounded to 2 decimals" in lines[0]


def test_limits_the_enclave_would_refuse_are_said_so() -> None:
    lines = session_review_lines(_contract(max_rows=0), "hospital")

    assert lines == [
        "inference session: the enclave will refuse to start it (argument 'max_rows' must be "
        "from 1 to 1000000000, not 0)"
    ]


def test_a_batch_contract_gets_no_session_lines() -> None:
    assert session_review_lines(_contract("tabular-predict"), "hospital") == []
