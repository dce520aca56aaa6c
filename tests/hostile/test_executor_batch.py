"""Batched executor calls (POST /v1/executor/leases and /v1/executor/finishes) keep every check
of the one-at-a-time routes: only the lease owner finishes, outputs must match, and one refused
finish neither stops nor leaks into the others."""

from __future__ import annotations

import hashlib
from typing import Any

from teeflow.crypto import b64e

from ._asgi import AppClient
from .conftest import Api, Member, approve, propose_echo, run_body, upload_dataset


def _queued(api: Api, member: Member, n: int) -> list[str]:
    dataset = upload_dataset(member, b"TFSEAL ciphertext stand-in")
    ids = []
    for _ in range(n):
        task = propose_echo(member, dataset["id"])
        approve(member, task)
        response = member.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(member, task))
        assert response.status_code == 200, response.text
        ids.append(task["id"])
    return ids


def _finish(task_id: str, ciphertext: bytes, *, sha256: str | None = None) -> dict[str, Any]:
    output = {
        "ciphertext_sha256": sha256 or hashlib.sha256(ciphertext).hexdigest(),
        "wrapped_keys": {"alice": "AA=="},
        "content": b64e(ciphertext),
    }
    return {"task_id": task_id, "status": "succeeded", "receipt": {}, "outputs": {"data": output}}


def test_leases_come_in_batches_oldest_first(api: Api) -> None:
    alice = api.member("alice")
    token = api.register_executor()
    ids = _queued(api, alice, 3)
    with AppClient(api.app, token=token) as executor:
        first = executor.post("/v1/executor/leases", params={"limit": 2})
        second = executor.post("/v1/executor/leases", params={"limit": 2})
        none = executor.post("/v1/executor/leases", params={"limit": 2})
        too_many = executor.post("/v1/executor/leases", params={"limit": 17})

    assert [lease["task_id"] for lease in first.json()["leases"]] == ids[:2]
    assert [lease["task_id"] for lease in second.json()["leases"]] == ids[2:]
    assert none.json() == {"leases": []}
    assert too_many.status_code == 422
    bundle = first.json()["leases"][0]
    assert bundle["approvals"].keys() == {"alice"} and bundle["inline_inputs"].keys() == {"data"}
    assert alice.http.get(f"/v1/tasks/{ids[0]}").json()["status"] == "running"


def test_batch_finish_refuses_each_bad_item_alone(api: Api) -> None:
    alice = api.member("alice")
    mine, theirs = api.register_executor(), api.register_executor()
    ids = _queued(api, alice, 3)
    with AppClient(api.app, token=mine) as executor, AppClient(api.app, token=theirs) as other:
        assert len(executor.post("/v1/executor/leases", params={"limit": 2}).json()["leases"]) == 2
        assert other.post("/v1/executor/leases").json()["leases"][0]["task_id"] == ids[2]
        answer = executor.post(
            "/v1/executor/finishes",
            json={
                "finishes": [
                    _finish(ids[0], b"sealed zero"),
                    _finish(ids[1], b"sealed one", sha256="0" * 64),  # content differs
                    _finish(ids[2], b"sealed two"),  # another executor's lease
                ]
            },
        )
        empty = executor.post("/v1/executor/finishes", json={"finishes": []})

    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0] == {"task_id": ids[0], "status": "succeeded"}
    assert (
        results[1]["error"]["status"] == 422 and "does not match" in results[1]["error"]["message"]
    )
    assert results[2]["error"] == {
        "status": 409,
        "code": "lease_lost",
        "message": "this executor does not hold the task's lease",
    }
    assert empty.status_code == 422
    statuses = [alice.http.get(f"/v1/tasks/{i}").json()["status"] for i in ids]
    assert statuses == ["succeeded", "running", "running"]
    assert alice.http.get(f"/v1/tasks/{ids[0]}/outputs/data/content").content == b"sealed zero"
    assert alice.http.get(f"/v1/tasks/{ids[2]}/outputs").json() == []


def test_batch_routes_need_an_executor_token(api: Api) -> None:
    alice = api.member("alice")
    api.register_executor()
    _queued(api, alice, 1)

    assert alice.http.post("/v1/executor/leases").status_code == 401
    assert api.anon.post("/v1/executor/finishes", json={"finishes": []}).status_code == 401
    assert alice.http.get("/v1/tasks").json()[0]["status"] == "queued"
