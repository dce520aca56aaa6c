"""The enclave side of an inference session, in process, against a hostile host.

Every request is sealed and signed as a member's client does it; the host may drop, alter, replay
or forge anything it relays, and the enclave must answer only what the contract allows, to whom it
allows, in a form only that member can read.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from session_kit import NOW, ServeFactory

from teeflow.crypto import DataKey, IntegrityError, b64d, hpke_open, key_wrap_info, unseal_bytes
from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.receipt import verify_receipt
from teeflow.enclave.session import InferenceSession, SessionRefused, _session_builtin
from teeflow.enclave.session_wire import REQUEST_DOMAIN, request_message
from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.registry import get_builtin


def _batch_predictions(model: bytes, table: bytes) -> list[dict[str, str]]:
    """What ``tabular-predict`` writes for ``table``, as CSV rows."""
    out = OutputData("predictions")
    with tempfile.TemporaryDirectory() as scratch:
        ctx = Context(
            inputs={"model": InputData("model", model), "table": InputData("table", table)},
            args={},
            outputs={"predictions": out},
            scratch=Path(scratch),
        )
        get_builtin("tabular-predict").load()(ctx)
    return list(csv.DictReader(io.StringIO(out.getvalue().decode())))


def _rows_request(table: bytes) -> bytes:
    rows = pd.read_csv(io.BytesIO(table)).to_dict("records")
    return json.dumps({"rows": rows}).encode()


def _open_session(served) -> InferenceSession:  # type: ignore[no-untyped-def]
    return InferenceSession.open(served.runtime, served.bundle, served.host, now=NOW)


def test_answers_equal_the_batch_predictions_of_the_same_rows(serve: ServeFactory) -> None:
    served = serve()
    table = breast_cancer_hospitals()["new_patients.csv"]
    expected = _batch_predictions(served.model, table)
    session = _open_session(served)

    as_json = served.request("alice", _rows_request(table), "r-json")
    as_csv = served.request("owner", table, "r-csv")
    answers = [served.open(r, *_sealed(session.handle(r))) for r in (as_json, as_csv)]

    for answer in answers:
        assert answer["status"] == "ok", answer
        got = answer["result"]["predictions"]
        assert [str(p["patient_id"]) for p in got] == [row["patient_id"] for row in expected]
        assert [p["probability"] for p in got] == [float(row["probability"]) for row in expected]
        assert [p["label"] for p in got] == [int(row["label"]) for row in expected]


def _sealed(response) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    assert response.refused == "" and response.sealed and response.signature
    return response.sealed, response.signature


def test_single_rows_match_the_batch_within_float_noise(serve: ServeFactory) -> None:
    served = serve()
    table = breast_cancer_hospitals()["new_patients.csv"]
    expected = _batch_predictions(served.model, table)[:5]
    session = _open_session(served)
    rows = pd.read_csv(io.BytesIO(table)).to_dict("records")[:5]

    got = []
    for index, row in enumerate(rows):
        request = served.request("alice", json.dumps({"rows": [row]}).encode(), f"one-{index}")
        got.append(served.open(request, *_sealed(session.handle(request)))["result"])

    for answer, row in zip(got, expected, strict=True):
        (prediction,) = answer["predictions"]
        assert prediction["probability"] == pytest.approx(float(row["probability"]), abs=2e-6)


def test_a_participant_who_is_not_a_requester_is_refused(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    request = served.request(
        "bob", _rows_request(breast_cancer_hospitals()["new_patients.csv"]), "b1"
    )

    answer = served.open(request, *_sealed(session.handle(request)))

    assert answer == {
        "status": "error",
        "error": "'bob' is not a requester of this session; the contract allows ['alice', 'owner']",
    }
    assert session.summary()["requests_refused"] == 1
    assert session.summary()["requests_answered"] == 0


def test_someone_outside_the_contract_gets_a_code_and_nothing_sealed(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    request = replace(served.request("alice", b'{"rows": []}', "x1"), requester="mallory")

    response = session.handle(request)

    assert response.refused == "not_a_party" and response.sealed == b"" == response.signature


def test_a_replayed_request_id_is_refused_and_the_session_goes_on(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    payload = _rows_request(breast_cancer_hospitals()["new_patients.csv"])
    first = served.request("alice", payload, "same-id")
    assert served.open(first, *_sealed(session.handle(first)))["status"] == "ok"

    replayed = served.open(first, *_sealed(session.handle(first)))
    fresh = served.request("alice", payload, "same-id")  # a new ciphertext, the same id
    again = served.open(fresh, *_sealed(session.handle(fresh)))
    other = served.request("alice", payload, "next-id")

    assert replayed["error"] == f"request id {first.request_id!r} was already used in this session"
    assert again["error"] == replayed["error"]
    assert served.open(other, *_sealed(session.handle(other)))["status"] == "ok"


def test_a_ciphertext_altered_in_the_relay_fails_cleanly(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    request = served.request(
        "alice", _rows_request(breast_cancer_hospitals()["new_patients.csv"]), "t1"
    )
    flipped = bytearray(request.ciphertext)
    flipped[len(flipped) // 2] ^= 0x01
    altered = replace(request, ciphertext=bytes(flipped))

    answer = served.open(altered, *_sealed(session.handle(altered)))
    retry = served.open(request, *_sealed(session.handle(request)))

    assert answer["status"] == "error" and "signature does not verify" in answer["error"]
    assert retry["status"] == "ok"  # the id was not burnt by the forgery


def test_a_request_signed_by_another_participant_is_refused(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    forged = served.request("alice", b'{"rows": [{}]}', "f1", signer="bob")

    answer = served.open(forged, *_sealed(session.handle(forged)))

    assert "signature does not verify" in answer["error"]


def test_a_request_sealed_for_another_request_id_fails(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    sealed_for_a = served.request("alice", b'{"rows": [{}]}', "id-a")
    # alice signs the ciphertext she sealed for id-a, but under id-b: it cannot be opened there
    message = request_message(served.chash, "alice", served.rid("id-b"), sealed_for_a.ciphertext)
    relabelled = replace(
        sealed_for_a,
        request_id=served.rid("id-b"),
        signature=served.parties["alice"].signing_key.sign(REQUEST_DOMAIN, message),
    )

    answer = served.open(relabelled, *_sealed(session.handle(relabelled)))

    assert answer["status"] == "error" and "does not decrypt" in answer["error"]
    assert session.summary()["requests_failed"] == 1


def test_the_answer_cannot_be_forged_swapped_or_read_by_others(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    payload = _rows_request(breast_cancer_hospitals()["new_patients.csv"])
    one, two = (served.request("alice", payload, rid) for rid in ("one", "two"))
    first, second = session.handle(one), session.handle(two)

    with pytest.raises(IntegrityError):  # the answer to "two" passed off as the answer to "one"
        served.open(one, second.sealed, second.signature)
    with pytest.raises(IntegrityError):  # a sealed answer altered in the relay
        served.open(one, first.sealed[:-1] + bytes([first.sealed[-1] ^ 1]), first.signature)
    with pytest.raises(IntegrityError):  # another participant cannot open alice's answer
        hpke_open(
            first.sealed,
            served.parties["bob"].receiving_key,
            info=key_wrap_info("response", served.chash, f"alice:{one.request_id}"),
        )


def test_a_bad_request_gets_a_readable_error_and_the_session_goes_on(
    serve: ServeFactory,
) -> None:
    served = serve()
    session = _open_session(served)
    bad = served.request("alice", b'{"rows": [{"mean_radius": "wide"}]}', "bad")
    good = served.request(
        "alice", _rows_request(breast_cancer_hospitals()["new_patients.csv"]), "g"
    )

    answer = served.open(bad, *_sealed(session.handle(bad)))

    assert answer["status"] == "error" and "feature column" in answer["error"]
    assert served.open(good, *_sealed(session.handle(good)))["status"] == "ok"
    assert session.summary()["requests_failed"] == 1


def test_max_requests_ends_the_session_with_usage_and_a_receipt(serve: ServeFactory) -> None:
    served = serve(arguments={"max_requests": 2})
    session = _open_session(served)
    payload = _rows_request(breast_cancer_hospitals()["new_patients.csv"])
    for rid in ("a", "b"):
        request = served.request("alice", payload, rid)
        assert served.open(request, *_sealed(session.handle(request)))["status"] == "ok"
    late = served.request("owner", payload, "c")

    refused = served.open(late, *_sealed(session.handle(late)))
    result = session.finish(now=NOW)

    assert session.end == "max_requests"
    assert "reached its max_requests" in refused["error"]
    body = verify_receipt(result.receipt, served.runtime.identity.signing_key.verify_key)
    assert body["status"] == "succeeded" and body["contract_hash"] == served.chash
    assert body["session"]["requests_answered"] == 2 and body["session"]["requests_refused"] == 1
    usage = result.outputs["usage"]
    assert body["outputs"]["usage"]["ciphertext_sha256"] == usage.ciphertext_sha256
    key = hpke_open(
        b64d(usage.wrapped_keys["bob"]),
        served.parties["bob"].receiving_key,
        info=key_wrap_info("output", served.chash, "usage"),
    )
    counts = json.loads(unseal_bytes(usage.ciphertext, DataKey(key)))
    rows = len(pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"])))
    assert counts["by_requester"] == {"alice": {"answered": 2, "failed": 0, "rows": 2 * rows}}
    assert b"patient_id" not in json.dumps(body).encode()  # counts only, never contents


def test_max_seconds_ends_the_session(serve: ServeFactory) -> None:
    served = serve(arguments={"max_seconds": 5})
    now = [100.0]
    session = InferenceSession.open(
        served.runtime, served.bundle, served.host, now=NOW, clock=lambda: now[0]
    )
    assert session.end is None and session.seconds_left() == 5

    now[0] += 5.5
    request = served.request("alice", b'{"rows": [{}]}', "late")

    assert session.end == "max_seconds"
    assert "max_seconds" in served.open(request, *_sealed(session.handle(request)))["error"]


def test_stop_gives_a_receipt_with_the_counts(serve: ServeFactory) -> None:
    served = serve()
    session = _open_session(served)
    request = served.request(
        "alice", _rows_request(breast_cancer_hospitals()["new_patients.csv"]), "s"
    )
    session.handle(request)

    receipt = session.stop(now=NOW)
    after = served.request(
        "alice", _rows_request(breast_cancer_hospitals()["new_patients.csv"]), "t"
    )

    body = verify_receipt(receipt, served.runtime.identity.signing_key.verify_key)
    assert body["status"] == "stopped" and body["outputs"] == {}
    assert body["session"]["requests_answered"] == 1
    assert served.open(after, *_sealed(session.handle(after)))["error"] == "the session has ended"


def test_the_session_does_not_start_without_every_approval(serve: ServeFactory) -> None:
    served = serve(skip_approval="alice")

    with pytest.raises(SessionRefused) as refused:
        _open_session(served)

    assert "'alice' has not approved" in refused.value.result.reason
    assert refused.value.result.status == "failed"


def test_a_batch_function_or_a_session_without_usage_does_not_start(serve: ServeFactory) -> None:
    not_a_session = serve(function="tabular-predict")
    no_usage = serve(outputs={"predictions": {"recipients": ["alice"]}})

    with pytest.raises(SessionRefused) as batch:
        _open_session(not_a_session)
    with pytest.raises(SessionRefused) as unusable:
        _open_session(no_usage)
    with pytest.raises(TaskRejected) as direct:
        _session_builtin({"function": {"kind": "builtin", "name": "tabular-predict"}})

    # tabular-predict declares no session arguments: the declaration check refuses it first
    assert "unknown argument `requesters`" in batch.value.result.reason
    assert "does not serve inference sessions" in str(direct.value)
    assert "one output, 'usage'" in unusable.value.result.reason
    assert batch.value.result.status == unusable.value.result.status == "failed"


def test_a_bad_argument_is_refused_by_the_declaration_before_the_session_starts(
    serve: ServeFactory,
) -> None:
    served = serve(arguments={"threshold": 7})

    with pytest.raises(SessionRefused) as refused:
        _open_session(served)

    # the arguments are in the contract every party and the operator read: the reason is public
    assert "argument `threshold` must be float 0..1, got 7" in refused.value.result.reason
    assert refused.value.result.status == "failed"
