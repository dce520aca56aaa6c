"""An executor gets an input's ciphertext, inline in its lease or through
``GET /v1/executor/tasks/{id}/inputs/{slot}``, only when every owner of that input approved the
task: an operator who queues a task behind an owner's back gets neither (routes/executors.py
``_approved_input``, the one rule for both)."""

from __future__ import annotations

import sqlite3
from typing import Any

from teeflow.server.routes.executors import INLINE_BYTES

from ._asgi import AppClient
from .conftest import Api, Member, approve, upload_dataset


def _task_over(
    api: Api, creator: Member, owner: Member, content: bytes, *, owner_approves: bool = False
) -> dict[str, Any]:
    """``creator``'s echo task over ``owner``'s ``content``, approved by the creator (and the
    owner if ``owner_approves``) and queued by the operator (an UPDATE of its row)."""
    dataset = upload_dataset(owner, content)
    body = {
        "function": "echo",
        "inputs": {"data": dataset["id"]},
        "outputs": {"data": {"recipients": [owner.username]}},
    }
    proposed = creator.http.post("/v1/tasks", json=body)
    assert proposed.status_code == 201, proposed.text
    task: dict[str, Any] = proposed.json()
    approve(creator, task)
    if owner_approves:
        approve(owner, task)
    with sqlite3.connect(api.data_dir / "teeflow.db") as db:
        db.execute("UPDATE tasks SET status = 'queued' WHERE task_id = ?", (task["id"],))
    return task


def _lease_and_fetch(api: Api, token: str, task: dict[str, Any]) -> tuple[dict[str, Any], int]:
    with AppClient(api.app, token=token) as executor:
        leased = executor.post("/v1/executor/lease")
        assert leased.status_code == 200, leased.text
        got = executor.get(f"/v1/executor/tasks/{task['id']}/inputs/data")
    bundle: dict[str, Any] = leased.json()
    assert bundle["task_id"] == task["id"]
    return bundle, got.status_code


def test_an_input_whose_owner_did_not_approve_is_neither_inlined_nor_sent(api: Api) -> None:
    token = api.register_executor()
    alice, bank = api.member("alice"), api.member("bank")
    small = _task_over(api, alice, bank, b"TFSEAL small stand-in")
    small_bundle, small_get = _lease_and_fetch(api, token, small)
    large = _task_over(api, alice, bank, b"TFSEAL" + bytes(INLINE_BYTES))
    large_bundle, large_get = _lease_and_fetch(api, token, large)

    assert small_bundle["inline_inputs"] == {} and small_get == 403
    assert large_bundle["inline_inputs"] == {} and large_get == 403


def test_an_approved_large_input_streams_through_its_own_request(api: Api) -> None:
    token = api.register_executor()
    alice, bank = api.member("alice"), api.member("bank")
    large = _task_over(api, alice, bank, b"TFSEAL" + bytes(INLINE_BYTES), owner_approves=True)

    with AppClient(api.app, token=token) as executor:
        bundle = executor.post("/v1/executor/lease").json()
        got = executor.get(f"/v1/executor/tasks/{large['id']}/inputs/data")

    assert bundle["task_id"] == large["id"] and bundle["inline_inputs"] == {}
    assert got.status_code == 200 and got.content == b"TFSEAL" + bytes(INLINE_BYTES)
