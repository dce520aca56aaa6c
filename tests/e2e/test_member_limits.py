"""Issue 17, rows 4-6, from a member's side: a malicious member against the session limits, the
executor capacity and the sign-in throttle, over real HTTP with a real executor process.

``hospital`` owns a model; ``clinic`` is the (possibly greedy) requester of a session on it;
``bank`` is another member with batch work; ``eve`` is a stranger. One executor only, so that a
session that held it would starve everyone else.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from teeflow.client import Client, InferenceError
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import PASSWORD, MemberFactory

THIRTY_DAYS = 30 * 86_400
TRAIN = {
    "label_column": "malignant",
    "id_column": "patient_id",
    "model": "logistic",
    "epochs": 2,
    "batch_size": 64,
    "seed": 0,
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """One executor: whatever a session holds, batch work has nowhere else to go."""
    data_dir = tmp_path_factory.mktemp("platform-limits")
    env = {"TEEFLOW_LEASE_SECONDS": "3", "TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    with LocalPlatform(data_dir, executors=1, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def model_id(member: MemberFactory) -> str:
    hospital = member("hospital")
    table = hospital.upload_dataset(
        breast_cancer_hospitals()["hospital_a.csv"], name="patients", kind="table"
    )
    train = hospital.propose(
        "tabular-train",
        inputs={"patients": table["id"]},
        outputs={"model": {"recipients": ["hospital"]}},
        arguments=TRAIN,
    )
    hospital.approve(train["id"])
    hospital.run(train["id"])
    assert hospital.wait(train["id"], timeout=300)["status"] == "succeeded"
    model = hospital.output(train["id"], "model")
    assert isinstance(model, bytes)
    return str(hospital.upload_dataset(model, name="model", kind="model")["id"])


def _propose_session(member: MemberFactory, model_id: str, **arguments: Any) -> dict[str, Any]:
    """The greedy requester's proposal, as ``clinic`` would write it."""
    return member("clinic").propose(
        "tabular-serve",
        inputs={"model": model_id},
        outputs={"usage": {"recipients": ["hospital", "clinic"]}},
        arguments={"requesters": ["clinic"], **arguments},
    )


def _start(member: MemberFactory, task: dict[str, Any]) -> None:
    member("clinic").approve(task["id"])
    member("hospital").approve(task["id"])
    member("clinic").run(task["id"])


def _rows(count: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"]))
    rows: list[dict[str, Any]] = frame.head(count).to_dict("records")
    assert len(rows) == count
    return rows


# -- row 4: a session with huge limits ------------------------------------------------------


def test_the_model_owner_is_warned_of_a_session_with_huge_limits(
    member: MemberFactory, model_id: str
) -> None:
    task = _propose_session(
        member,
        model_id,
        max_requests=10**9,
        max_seconds=THIRTY_DAYS,
        max_rows_per_request=100_000,
    )

    review = member("hospital").review(member("hospital").task(task["id"]))

    warned = [line for line in review if "is large" in line]
    assert any("max_requests" in line for line in warned)
    assert any("max_rows_per_request" in line for line in warned)
    assert any("max_seconds" in line for line in warned)
    assert any("full precision" in line for line in review)
    assert any("'clinic'" in line and "requesters" in line for line in review)
    member("clinic").cancel(task["id"])


def test_the_enclave_refuses_requests_over_the_agreed_rows_and_rounds_answers(
    member: MemberFactory, model_id: str
) -> None:
    task = _propose_session(
        member, model_id, max_rows_per_request=5, max_rows=12, decimals=2, max_seconds=600
    )
    _start(member, task)
    clinic = member("clinic")

    with pytest.raises(InferenceError, match="holds 6 rows"):
        clinic.infer(task["id"], _rows(6))
    first = clinic.infer(task["id"], _rows(5))
    second = clinic.infer(task["id"], _rows(5))
    with pytest.raises(InferenceError, match="at most 2 now"):
        clinic.infer(task["id"], _rows(5))
    last = clinic.infer(task["id"], _rows(2))

    answered = first + second + last
    assert len(answered) == 12
    assert all(p["probability"] == round(p["probability"], 2) for p in answered)
    assert any(0 < p["probability"] < 1 for p in answered)
    assert member("hospital").wait(task["id"], timeout=60)["status"] == "succeeded"


# -- row 5: a 30-day session does not hold the only executor --------------------------------


def test_a_thirty_day_session_leaves_the_only_executor_to_batch_work(
    member: MemberFactory, model_id: str
) -> None:
    session = _propose_session(member, model_id, max_seconds=THIRTY_DAYS)
    _start(member, session)
    clinic, bank = member("clinic"), member("bank")
    assert clinic.infer(session["id"], _rows(1))  # the session holds the executor now

    data = bank.upload_dataset(b"id,amount\nb1,7\n", name="ledger.csv", kind="table")
    batch = bank.propose(
        "echo", inputs={"data": data["id"]}, outputs={"data": {"recipients": ["bank"]}}
    )
    bank.approve(batch["id"])
    bank.run(batch["id"])

    assert bank.wait(batch["id"], timeout=120)["status"] == "succeeded"
    assert bank.output(batch["id"], "data") == b"id,amount\nb1,7\n"
    assert clinic.infer(session["id"], _rows(1))  # and the session still answers
    clinic.cancel(session["id"])


# -- row 6: a stranger's wrong passwords do not lock a member out ---------------------------


def test_wrong_passwords_for_another_members_name_do_not_lock_them_out(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    bank = member("bank")  # signed in before the attack: its token must keep working
    with httpx.Client(base_url=platform.url) as eve:
        tries = [
            eve.post("/v1/sessions", json={"username": "bank", "password": f"guess-{n}"})
            for n in range(6)
        ]

    assert [r.status_code for r in tries[:5]] == [401] * 5
    assert tries[5].status_code == 429  # eve herself is throttled
    assert bank.http.get("/v1/users/me").status_code == 200
    fresh = Client(platform.url, keys=bank.keys, home=bank.home)
    try:
        assert fresh.login("bank", PASSWORD, remember=False).startswith("tf_")
    finally:
        fresh.close()
