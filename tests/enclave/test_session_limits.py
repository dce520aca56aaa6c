"""The limits the contract gives an inference session, as the enclave enforces them: rows per
request and in total, the request rate, rounding, and counters that survive a resume."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pytest
from session_kit import NOW, Served, ServeFactory

from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.session import InferenceSession, SessionRefused, SessionRequest
from teeflow.enclave.session_limits import LARGE, SessionLimits
from teeflow.functions.datasets import breast_cancer_hospitals


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _payload(count: int) -> bytes:
    frame = pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"]))
    return json.dumps({"rows": frame.head(count).to_dict("records")}).encode()


def _ask(served: Served, session: InferenceSession, rows: int, rid: str) -> dict[str, Any]:
    request = served.request("alice", _payload(rows), rid)
    response = session.handle(request)
    return served.open(request, response.sealed, response.signature)


def _open(served: Served, clock: Clock | None = None) -> InferenceSession:
    return InferenceSession.open(
        served.runtime, served.bundle, served.host, now=NOW, clock=clock or Clock()
    )


def test_rows_per_request_and_in_total_are_enforced(serve: ServeFactory) -> None:
    served = serve(arguments={"max_rows_per_request": 4, "max_rows": 10})
    session = _open(served)

    too_many = _ask(served, session, 5, "a")
    answers = [_ask(served, session, 4, rid) for rid in ("b", "c")]
    over_total = _ask(served, session, 3, "d")
    last = _ask(served, session, 2, "e")

    assert too_many["status"] == "error" and "holds 5 rows" in too_many["error"]
    assert [len(a["result"]["predictions"]) for a in answers] == [4, 4]
    assert over_total["status"] == "error" and "at most 2 now" in over_total["error"]
    assert len(last["result"]["predictions"]) == 2
    assert session.end == "max_rows"
    assert session.summary()["rows_answered"] == 10


def test_the_request_rate_is_enforced_and_recovers(serve: ServeFactory) -> None:
    served = serve(arguments={"max_requests_per_minute": 2})
    clock = Clock()
    session = _open(served, clock)

    first = [_ask(served, session, 1, rid)["status"] for rid in ("a", "b")]
    throttled = _ask(served, session, 1, "c")
    clock.now += 61
    later = _ask(served, session, 1, "d")

    assert first == ["ok", "ok"]
    assert (
        throttled["status"] == "error"
        and "rate limit is 2 requests a minute" in (throttled["error"])
    )
    assert later["status"] == "ok"


def test_probabilities_are_rounded_when_the_contract_says_so(serve: ServeFactory) -> None:
    plain = serve()
    exact = _ask(plain, _open(plain), 20, "x")["result"]["predictions"]
    served = serve(arguments={"decimals": 2})

    rounded = _ask(served, _open(served), 20, "y")["result"]["predictions"]

    assert [p["probability"] for p in rounded] == [round(p["probability"], 2) for p in exact]
    assert any(p["probability"] != round(p["probability"], 2) for p in exact)


def test_a_resumed_session_goes_on_counting_from_its_sealed_checkpoint(
    serve: ServeFactory,
) -> None:
    served = serve(arguments={"max_rows": 10})
    first = _open(served)
    _ask(served, first, 6, "a")
    first.checkpoint(served.host)
    first.close()

    resumed = _open(served)  # another executor: same enclave key, the host's checkpoint
    replayed = _ask(served, resumed, 1, "a")
    over = _ask(served, resumed, 5, "b")

    assert replayed["status"] == "error" and "already used" in replayed["error"]
    assert over["status"] == "error" and "at most 4 now" in over["error"]
    assert resumed.summary()["rows_answered"] == 6


def test_a_tampered_checkpoint_refuses_the_session(serve: ServeFactory) -> None:
    served = serve()
    session = _open(served)
    _ask(served, session, 1, "a")
    session.checkpoint(served.host)
    sequence, sealed = served.host.checkpoints[-1]
    served.host.checkpoints.append((sequence + 1, sealed[:-1] + bytes([sealed[-1] ^ 1])))

    with pytest.raises(SessionRefused, match="checkpoint does not decrypt"):
        _open(served)


def test_a_request_from_no_party_is_not_counted_as_rows(serve: ServeFactory) -> None:
    served = serve()
    session = _open(served)

    response = session.handle(SessionRequest("mallory", "m-1", b"", b""))

    assert response.refused == "not_a_party"
    assert session.summary()["rows_answered"] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_rows_per_request": 0}, "max_rows_per_request"),
        ({"max_rows": True}, "max_rows"),
        ({"max_seconds": 31 * 86_400}, "max_seconds"),
        ({"decimals": 2.5}, "decimals"),
        ({"max_requests_per_minute": "60"}, "max_requests_per_minute"),
    ],
)
def test_out_of_range_limits_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskRejected, match=message):
        SessionLimits.from_arguments({"requesters": ["alice"], **arguments})


def test_defaults_are_modest_and_huge_limits_are_flagged() -> None:
    default = SessionLimits.from_arguments({"requesters": ["alice"]})
    huge = SessionLimits.from_arguments(
        {"requesters": ["alice"], "max_requests": 10**9, "max_seconds": 30 * 86_400}
    )

    assert default.large() == {}
    assert default.max_rows_per_request <= LARGE["max_rows_per_request"] / 10
    assert set(huge.large()) == {"max_requests", "max_seconds"}
