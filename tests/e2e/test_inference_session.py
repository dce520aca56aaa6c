"""Online inference sessions over real HTTP with real executor processes (docs/inference.md).

``hospital`` trains a model and serves it in a ``tabular-serve`` session; ``clinic`` may query it;
``auditor`` takes part in the contract (it receives the usage counts) but may not query; ``eve``
is a member who is not part of the task.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from teeflow.client import ApiError, Client, InferenceError
from teeflow.crypto import PublicKey, VerifyKey, b64d, b64e
from teeflow.enclave.contract import contract_hash
from teeflow.enclave.session_wire import new_request_id, open_response, seal_request
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, lease_holder, scan_for

TRAIN = {
    "label_column": "malignant",
    "id_column": "patient_id",
    "model": "mlp",
    "hidden": [16],
    "epochs": 3,
    "batch_size": 64,
    "seed": 0,
}


def _approve_all(task: dict[str, Any], *clients: Client) -> None:
    for client in clients:
        client.approve(task["id"])


@pytest.fixture(scope="module")
def model_dataset(member: MemberFactory) -> str:
    """A model from ``tabular-train`` that ``hospital`` received and registered as its dataset."""
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
    _approve_all(train, hospital)
    hospital.run(train["id"])
    assert hospital.wait(train["id"], timeout=300)["status"] == "succeeded"
    model = hospital.output(train["id"], "model")
    assert isinstance(model, bytes)
    return str(hospital.upload_dataset(model, name="model", kind="model")["id"])


def _start_session(member: MemberFactory, model_id: str, **limits: Any) -> dict[str, Any]:
    hospital, clinic, auditor = member("hospital"), member("clinic"), member("auditor")
    task = hospital.propose(
        "tabular-serve",
        inputs={"model": model_id},
        outputs={"usage": {"recipients": ["hospital", "auditor"]}},
        arguments={"requesters": ["clinic"], **limits},
    )
    assert set(task["contract"]["participants"]) == {"hospital", "clinic", "auditor"}
    _approve_all(task, hospital, clinic, auditor)
    hospital.run(task["id"])
    return task


@pytest.fixture(scope="module")
def session(member: MemberFactory, model_dataset: str) -> Iterator[dict[str, Any]]:
    task = _start_session(member, model_dataset)
    yield task
    member("hospital").cancel(task["id"])


def _rows(marker: str | None = None) -> list[dict[str, Any]]:
    frame = pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"]))
    rows: list[dict[str, Any]] = frame.head(20).to_dict("records")
    if marker is not None:
        rows[0]["patient_id"] = marker
    return rows


def _batch_predict(member: MemberFactory, model_id: str, rows: list[dict[str, Any]]) -> list[dict]:
    hospital = member("hospital")
    table = hospital.upload_dataset(
        pd.DataFrame(rows).to_csv(index=False).encode(), name="to-score", kind="table"
    )
    task = hospital.propose(
        "tabular-predict",
        inputs={"model": model_id, "table": table["id"]},
        outputs={"predictions": {"recipients": ["hospital"]}},
    )
    _approve_all(task, hospital)
    hospital.run(task["id"])
    assert hospital.wait(task["id"], timeout=120)["status"] == "succeeded"
    data = hospital.output(task["id"], "predictions")
    assert isinstance(data, bytes)
    return list(csv.DictReader(io.StringIO(data.decode())))


def _with_receipt(client: Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The task once the executor delivered the receipt of the stopped session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.task(task_id)
        if task["receipt"] is not None:
            return task
        time.sleep(0.1)
    raise AssertionError("the stopped session's receipt never arrived")


def test_a_requester_gets_the_batch_predictions_of_the_same_rows(
    member: MemberFactory, session: dict[str, Any], model_dataset: str
) -> None:
    rows = _rows()
    expected = _batch_predict(member, model_dataset, rows)

    got = member("clinic").infer(session["id"], rows)

    assert [str(p["patient_id"]) for p in got] == [row["patient_id"] for row in expected]
    assert [p["probability"] for p in got] == [float(row["probability"]) for row in expected]
    assert [p["label"] for p in got] == [int(row["label"]) for row in expected]


def test_a_participant_who_is_not_a_requester_is_refused_by_the_enclave(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    with pytest.raises(InferenceError, match="'auditor' is not a requester of this session"):
        member("auditor").infer(session["id"], _rows())


def test_a_non_participant_is_refused_by_the_control_plane(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    eve = member("eve")
    rid = new_request_id("eve")
    body = {"request_id": rid, "ciphertext": "AAAA", "signature": "AAAA"}

    sent = eve.http.post(f"/v1/tasks/{session['id']}/requests", json=body, params={"wait": 1})
    polled = eve.http.get(f"/v1/tasks/{session['id']}/requests/{rid}")

    assert sent.status_code == 404 and polled.status_code == 404
    with pytest.raises(ApiError) as denied:
        eve.infer(session["id"], _rows())
    assert denied.value.status == 404


def test_a_replayed_request_id_is_refused(member: MemberFactory, session: dict[str, Any]) -> None:
    client = member("clinic").open_session(session["id"])
    payload = pd.DataFrame(_rows()).to_csv(index=False).encode()
    replayed = new_request_id()
    client.request(payload, request_id=replayed)

    with pytest.raises(InferenceError, match="already used in this session"):
        client.request(payload, request_id=replayed)
    assert client.request(payload)["predictions"]  # a fresh id


def test_an_answer_not_ready_within_the_wait_is_collected_later(
    member: MemberFactory, session: dict[str, Any]
) -> None:
    clinic = member("clinic")
    task = clinic.task(session["id"])
    chash = contract_hash(task["contract"])
    keys = task["contract"]["executor"]["public_keys"]
    later = new_request_id("later")
    ciphertext, signature = seal_request(
        json.dumps({"rows": _rows()[:1]}).encode(),
        contract_hash=chash,
        requester="clinic",
        request_id=later,
        enclave_key=PublicKey.from_b64(keys["x25519"]),
        signing_key=clinic.keys.signing_key,
    )
    body = {"request_id": later, "ciphertext": b64e(ciphertext), "signature": b64e(signature)}
    path = f"/v1/tasks/{session['id']}/requests"

    queued = clinic.http.post(path, json=body, params={"wait": 0})
    answered = clinic.http.get(f"{path}/{later}", params={"wait": 20})
    again = clinic.http.get(f"{path}/{later}")

    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert answered.status_code == 200 and again.status_code == 404  # collected once
    envelope = open_response(
        b64d(answered.json()["sealed"]),
        b64d(answered.json()["signature"]),
        contract_hash=chash,
        requester="clinic",
        request_id=later,
        request_ciphertext=ciphertext,
        enclave_key=VerifyKey.from_b64(keys["ed25519"]),
        receiving_key=clinic.keys.receiving_key,
    )
    assert envelope["status"] == "ok" and len(envelope["result"]["predictions"]) == 1


def test_request_rows_never_reach_the_platform_in_plaintext(
    member: MemberFactory, session: dict[str, Any], platform: LocalPlatform
) -> None:
    marker = f"ROWCANARY{uuid.uuid4().hex}"

    got = member("clinic").infer(session["id"], _rows(marker))

    assert got[0]["patient_id"] == marker  # it reached the enclave and came back, sealed
    assert scan_for(platform.data_dir, [marker.encode()]) == []


def test_canceling_ends_the_session_with_a_receipt_of_what_it_served(
    member: MemberFactory, model_dataset: str
) -> None:
    hospital, clinic = member("hospital"), member("clinic")
    task = _start_session(member, model_dataset)
    for _ in range(3):
        clinic.infer(task["id"], _rows()[:2])

    hospital.cancel(task["id"])
    done = _with_receipt(hospital, task["id"])

    body = hospital.receipt(task["id"])["body"]
    assert done["status"] == "canceled"
    assert body["status"] == "stopped" and body["session"]["requests_answered"] == 3
    with pytest.raises(ApiError) as ended:
        clinic.infer(task["id"], _rows())
    assert ended.value.status == 409


def test_max_requests_ends_the_session_and_the_usage_reaches_its_recipients(
    member: MemberFactory, model_dataset: str
) -> None:
    hospital, clinic, auditor = member("hospital"), member("clinic"), member("auditor")
    task = _start_session(member, model_dataset, max_requests=2)

    for _ in range(2):
        clinic.infer(task["id"], _rows()[:1])
    done = hospital.wait(task["id"], timeout=60)

    assert done["status"] == "succeeded"
    assert hospital.receipt(task["id"])["body"]["session"]["end"] == "max_requests"
    usage = auditor.output(task["id"], "usage")
    assert isinstance(usage, bytes) and b'"clinic": {' in usage
    with pytest.raises(ApiError) as denied:
        clinic.output(task["id"], "usage")
    assert denied.value.status == 403


def test_a_session_resumed_on_another_executor_goes_on_counting(
    member: MemberFactory, model_dataset: str, platform: LocalPlatform
) -> None:
    # Last in this module: it kills the executor that serves the session and starts another
    # (the surviving one already serves the module's session, and serves one at a time).
    clinic = member("clinic")
    task = _start_session(member, model_dataset, max_rows=3)
    client = clinic.open_session(task["id"])
    two = pd.DataFrame(_rows()[:2]).to_csv(index=False).encode()
    one = pd.DataFrame(_rows()[:1]).to_csv(index=False).encode()
    before = new_request_id("before")
    assert len(client.request(two, request_id=before)["predictions"]) == 2

    platform.kill_executor(lease_holder(platform, task["id"]))
    platform.add_executor()

    with pytest.raises(InferenceError, match="already used in this session"):
        client.request(two, request_id=before, timeout=120)
    with pytest.raises(InferenceError, match="at most 1 now"):
        client.request(two)
    assert len(client.request(one)["predictions"]) == 1

    done = member("hospital").wait(task["id"], timeout=60)
    assert done["status"] == "succeeded"
    assert member("hospital").receipt(task["id"])["body"]["session"]["rows_answered"] == 3
