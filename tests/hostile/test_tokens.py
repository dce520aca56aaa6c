"""Bearer tokens: missing, garbled, forged, signed out, expired, another member's, brute force.

Each is refused with 401 (or 403/404 for a real member acting on what is not theirs) and a
message that says what to do; none is echoed back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ._asgi import AppClient
from .conftest import PASSWORD, Api, Member, approve, open_api, propose_echo, upload_dataset

TTL = 600
WINDOW = 300


@dataclass
class Clocked:
    api: Api
    alice: Member
    bob: Member
    now: list[datetime]

    def advance(self, seconds: float) -> None:
        self.now[0] += timedelta(seconds=seconds)


START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def _platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clocked]:
    now = [START]
    with open_api(
        tmp_path_factory.mktemp("tokens"),
        clock=lambda: now[0],
        token_ttl_seconds=TTL,
        login_failures_allowed=3,
        login_window_seconds=WINDOW,
    ) as api:
        yield Clocked(api, api.member("alice"), api.member("bob"), now)


@pytest.fixture
def clocked(_platform: Clocked) -> Iterator[Clocked]:
    """The shared platform with its clock at START; failed sign-ins are forgotten after."""
    _platform.now[0] = START
    yield _platform
    _platform.now[0] = START
    for username in ("alice", "bob", "ghost", "nobody-here"):
        _platform.api.app.state.platform.store.clear_login_failures(username)


def _refused(response: Any, status: int = 401) -> str:
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] and error["message"]
    message: str = error["message"]
    return message


def _login(api: Api, username: str, password: str) -> Any:
    return api.anon.post("/v1/sessions", json={"username": username, "password": password})


def test_missing_authorization_is_refused(clocked: Clocked) -> None:
    for url in ("/v1/users/me", "/v1/datasets", "/v1/tasks", "/v1/audit", "/v1/enclave"):
        assert "sign in" in _refused(clocked.api.anon.get(url))


GARBLED = [
    "Bearer",
    "Bearer ",
    "Basic YWxpY2U6cGFzc3dvcmQ=",
    "Token {token}",
    "{token}",
    "Bearer {token}x",
    "Bearer {token} {token}",
    "Bearer tf_" + "A" * 100_000,
    "Bearer \u00e9\u00e9\u00e9",
]


@pytest.mark.parametrize("header", GARBLED, ids=range(len(GARBLED)))
def test_garbled_authorization_is_refused(clocked: Clocked, header: str) -> None:
    value = header.format(token=clocked.alice.token)

    response = clocked.api.anon.get(
        "/v1/users/me", headers={"Authorization": value.encode("utf-8")}
    )

    message = _refused(response)
    assert clocked.alice.token not in response.text
    assert "sign in" in message


def test_forged_tokens_are_refused(clocked: Clocked) -> None:
    real = clocked.alice.token
    forged = ["tf_" + secrets.token_urlsafe(32), real[:-1], real + "A"]
    for at in (0, 3, len(real) // 2, len(real) - 1):
        forged.append(real[:at] + ("B" if real[at] != "B" else "C") + real[at + 1 :])

    for token in forged:
        response = clocked.api.anon.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert _refused(response) == "token is invalid or signed out; sign in again"
        assert token not in response.text
    assert clocked.alice.http.get("/v1/users/me").status_code == 200


def test_signed_out_token_is_refused_and_other_sessions_live_on(clocked: Clocked) -> None:
    session = _login(clocked.api, "alice", PASSWORD).json()["token"]
    with AppClient(clocked.api.app, token=session) as signed_in:
        assert signed_in.delete("/v1/sessions").status_code == 204

        assert "signed out" in _refused(signed_in.get("/v1/users/me"))
        assert "signed out" in _refused(signed_in.delete("/v1/sessions"))
    assert clocked.alice.http.get("/v1/users/me").json()["username"] == "alice"


def test_expired_token_is_refused(clocked: Clocked) -> None:
    clocked.advance(TTL - 1)
    assert clocked.alice.http.get("/v1/users/me").status_code == 200

    clocked.advance(1)

    assert _refused(clocked.alice.http.get("/v1/users/me")) == "token expired; sign in again"
    assert _refused(clocked.alice.http.get("/v1/datasets")) == "token expired; sign in again"
    assert _login(clocked.api, "alice", PASSWORD).status_code == 200


def test_member_and_executor_tokens_are_not_interchangeable(clocked: Clocked) -> None:
    executor_token = clocked.api.register_executor()
    with AppClient(clocked.api.app, token=executor_token) as executor:
        as_member = executor.get("/v1/users/me")
    as_executor = clocked.alice.http.post("/v1/executor/lease")

    assert "invalid" in _refused(as_member)
    assert "executor token" in _refused(as_executor)


def test_another_members_token_cannot_act_on_alices_resources(clocked: Clocked) -> None:
    api, alice, bob = clocked.api, clocked.alice, clocked.bob
    if not api.app.state.platform.store.list_executors():
        api.register_executor()
    dataset = upload_dataset(alice, b"alice's sealed rows")
    pending = alice.http.post("/v1/datasets", json={"name": "later"}).json()
    task = propose_echo(alice, dataset["id"])

    refusals = [
        (bob.http.get(f"/v1/datasets/{dataset['id']}/content"), 403),
        (bob.http.put(f"/v1/datasets/{pending['id']}/content", content=b"bob's"), 403),
        (bob.http.get(f"/v1/tasks/{task['id']}"), 404),
        (bob.http.post(f"/v1/tasks/{task['id']}/approve", json={"signature": "AA=="}), 404),
        (bob.http.post(f"/v1/tasks/{task['id']}/reject", json={}), 404),
        (bob.http.post(f"/v1/tasks/{task['id']}/run"), 404),
        (bob.http.post(f"/v1/tasks/{task['id']}/cancel"), 404),
        (bob.http.get(f"/v1/tasks/{task['id']}/outputs"), 404),
        (bob.http.get(f"/v1/tasks/{task['id']}/outputs/data/key"), 404),
        (bob.http.get(f"/v1/tasks/{task['id']}/events"), 404),
    ]

    for response, status in refusals:
        _refused(response, status)
    assert task["id"] not in [t["id"] for t in bob.http.get("/v1/tasks").json()]
    assert alice.http.get(f"/v1/tasks/{task['id']}").json()["status"] == "proposed"
    assert alice.http.get(f"/v1/datasets/{pending['id']}").json()["state"] == "pending"


def test_a_participant_cannot_run_cancel_or_read_outputs_meant_for_others(
    clocked: Clocked,
) -> None:
    api, alice, bob = clocked.api, clocked.alice, clocked.bob
    token = api.register_executor()
    dataset = upload_dataset(alice, b"alice's sealed rows")
    body = {
        "function": "echo",
        "inputs": {"data": dataset["id"]},
        "outputs": {"data": {"recipients": ["alice"]}},
        "disclosure": {"progress": ["bob"]},  # bob participates, receives nothing
    }
    task = alice.http.post("/v1/tasks", json=body).json()
    approve(alice, task)
    approve(bob, task)
    assert bob.http.post(f"/v1/tasks/{task['id']}/run").status_code == 403
    assert alice.http.post(f"/v1/tasks/{task['id']}/run").status_code == 200
    with AppClient(api.app, token=token) as executor:
        assert executor.post("/v1/executor/lease").json()["task_id"] == task["id"]
        base = f"/v1/executor/tasks/{task['id']}"
        assert executor.put(f"{base}/outputs/data", content=b"sealed out").status_code == 200
        output = {"ciphertext_sha256": "a" * 64, "wrapped_keys": {"alice": "AA=="}}
        finish = {"status": "succeeded", "receipt": {}, "outputs": {"data": output}}
        assert executor.post(f"{base}/finish", json=finish).status_code == 200

    content = bob.http.get(f"/v1/tasks/{task['id']}/outputs/data/content")
    key = bob.http.get(f"/v1/tasks/{task['id']}/outputs/data/key")

    assert "not a recipient" in _refused(content, 403)
    assert "not a recipient" in _refused(key, 403)
    assert "creator" in _refused(bob.http.post(f"/v1/tasks/{task['id']}/cancel"), 403)
    assert alice.http.get(f"/v1/tasks/{task['id']}/outputs/data/content").content == b"sealed out"


def test_login_brute_force_hits_the_rate_limit(clocked: Clocked) -> None:
    api = clocked.api
    failures = [_login(api, "alice", f"guess number {i}") for i in range(3)]
    unknown = _login(api, "nobody-here", "guess number 0")

    limited = _login(api, "alice", PASSWORD)  # even the right password, while limited

    assert {_refused(r) for r in [*failures, unknown]} == {"wrong username or password"}
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.json()["error"]["message"].startswith(
        "too many failed sign-ins from here; try again in 30 s"
    )
    assert PASSWORD not in limited.text
    assert _login(api, "bob", PASSWORD).status_code == 200  # per account, not global
    clocked.advance(WINDOW + 1)
    assert _login(api, "alice", PASSWORD).status_code == 200


def test_unknown_usernames_are_rate_limited_too(clocked: Clocked) -> None:
    for i in range(3):
        _refused(_login(clocked.api, "ghost", f"guess {i}"))

    assert _login(clocked.api, "ghost", "guess 4").status_code == 429
