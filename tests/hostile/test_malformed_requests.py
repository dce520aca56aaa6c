"""Malformed and hostile request bodies get a clean 4xx from the control plane, never a 5xx.

Hypothesis sends random bytes, random JSON and mutated valid bodies to register, sign-in,
propose and approve; the explicit cases below are the crashes this found (each was a 500).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teeflow.client import MemberKeys, public_keys
from teeflow.crypto import PrivateKey, SigningKey

from ._asgi import AppClient
from .conftest import PASSWORD, Api, Member, leased_task, open_api, propose_echo, upload_dataset

FUZZ = settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def assert_clean_error(response: httpx.Response) -> None:
    """A 4xx in the error catalogue's shape, or a success: never a 5xx."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]


@dataclass
class World:
    api: Api
    alice: Member
    bob: Member
    executor_token: str
    task: dict[str, Any]
    bodies: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_api(tmp_path_factory.mktemp("malformed")) as api:
        alice, bob = api.member("alice"), api.member("bob")
        executor_token = api.register_executor()
        dataset = upload_dataset(alice, b"ciphertext")
        task = propose_echo(alice, dataset["id"])
        keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
        bodies = {
            "/v1/users": {"username": "mallory", "password": PASSWORD, **public_keys(keys)},
            "/v1/sessions": {"username": "alice", "password": "not the password"},
            "/v1/tasks": {
                "function": "echo",
                "inputs": {"data": dataset["id"]},
                "arguments": {"epochs": 1},
                "outputs": {"data": {"recipients": ["alice"]}},
            },
            f"/v1/tasks/{task['id']}/approve": {
                "signature": "AAAA",
                "wrapped_keys": {"data": "AA=="},
            },
            "/v1/datasets": {"name": "rows.csv", "kind": "table"},
        }
        yield World(api, alice, bob, executor_token, task, bodies)


def _mutate(data: st.DataObject, value: Any) -> Any:
    value = copy.deepcopy(value)
    parent: Any = None
    key: Any = None
    node = value
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(
            st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
        )
        parent, node = node, node[key]
    if parent is None:
        return data.draw(JSON)
    if data.draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = data.draw(JSON)
    return value


def _post(world: World, path: str, content: bytes) -> httpx.Response:
    # Sign-in attempts are rate limited per username: reset so every example reaches the handler.
    world.api.app.state.platform.store.clear_login_failures("alice")
    return world.alice.http.post(
        path, content=content, headers={"Content-Type": "application/json"}
    )


PATHS = ["/v1/users", "/v1/sessions", "/v1/tasks", "approve", "/v1/datasets"]


def _path(world: World, name: str) -> str:
    return f"/v1/tasks/{world.task['id']}/approve" if name == "approve" else name


@pytest.mark.parametrize("name", PATHS)
@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bytes_as_json_get_a_clean_4xx(world: World, name: str, body: bytes) -> None:
    response = _post(world, _path(world, name), body)
    assert 400 <= response.status_code < 500, response.text
    assert_clean_error(response)


@pytest.mark.parametrize("name", PATHS)
@FUZZ
@given(body=JSON)
def test_random_json_never_crashes(world: World, name: str, body: Any) -> None:
    assert_clean_error(_post(world, _path(world, name), json.dumps(body).encode()))


@pytest.mark.parametrize("name", PATHS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_bodies_never_crash(world: World, name: str, data: st.DataObject) -> None:
    path = _path(world, name)
    body = _mutate(data, world.bodies[path])
    assert_clean_error(_post(world, path, json.dumps(body).encode()))


# -- the crashes found, one regression test each ------------------------------------------------

UNHASHABLE = [
    ("NaN", b"NaN"),
    ("Infinity", b"-Infinity"),
    ("an overflowing float", b"1e400"),
    ("an integer beyond 2**53", str(2**60).encode()),
    ("a lone surrogate", b'"\\ud800"'),
    ("64 nested lists", b"[" * 64 + b"]" * 64),
    ("900 nested lists", b"[" * 900 + b"]" * 900),
]


@pytest.mark.parametrize(("what", "value"), UNHASHABLE, ids=[w for w, _ in UNHASHABLE])
def test_proposal_arguments_that_cannot_be_hashed_are_refused(
    world: World, what: str, value: bytes
) -> None:
    """Was a 500 (CryptoError from RFC 8785, or a response too deep to serialise after the task
    was stored, which then broke the task list of everyone the contract names)."""
    dataset_id = world.task["contract"]["inputs"]["data"]["dataset_id"]
    before = world.bob.http.get("/v1/tasks").json()
    body = (
        b'{"function": "echo", "inputs": {"data": "' + dataset_id.encode() + b'"}, '
        b'"outputs": {"data": {"recipients": ["bob"]}}, "arguments": {"x": ' + value + b"}}"
    )

    response = _post(world, "/v1/tasks", body)

    assert response.status_code == 422, response.text
    assert "arguments" in response.json()["error"]["message"]
    listed = world.bob.http.get("/v1/tasks")  # bob is named by the refused contract
    assert listed.status_code == 200 and listed.json() == before


@pytest.mark.parametrize(
    "url",
    [
        "/v1/audit?after=" + str(2**70),
        "/v1/audit?limit=-1",
        "/v1/tasks/{task}/events?after=" + str(2**64),
        "/v1/tasks/{task}?wait=0.01&status=proposed&events_after=" + str(2**64),
    ],
)
def test_integers_beyond_the_database_range_are_refused(world: World, url: str) -> None:
    """Was a 500: OverflowError binding the integer into SQLite."""
    response = world.alice.http.get(url.format(task=world.task["id"]))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"


def test_non_ascii_executor_secret_is_refused_not_crashed(api: Api) -> None:
    """Was a 500: hmac.compare_digest refuses non-ASCII str."""
    body = {"secret": "sécret", "tee": "sim", "measurement": "0", "evidence": {}, "public_keys": {}}

    response = api.anon.post("/v1/executors", json=body)

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "wrong executor registration secret"


def test_executor_values_the_database_cannot_hold_are_refused(world: World) -> None:
    """A checkpoint sequence, event kind, output hash or receipt that the database columns (or
    the audit chain's RFC 8785 hash) cannot hold is a 422, not a 500, and changes nothing."""
    api, alice, token = world.api, world.alice, world.executor_token
    task_id = leased_task(api, alice, token)["task_id"]
    base = f"/v1/executor/tasks/{task_id}"
    event = {"recipient": "alice", "payload": "p", "kind": "k" * 65}
    output = {"ciphertext_sha256": "A" * 64, "wrapped_keys": {}}
    with AppClient(api.app, token=token) as executor:
        executor.put(f"{base}/outputs/data", content=b"sealed")
        responses = [
            executor.put(f"{base}/checkpoint", content=b"x", headers={"X-Sequence": str(2**40)}),
            executor.post(f"{base}/events", json=event),
            executor.post(
                f"{base}/finish",
                json={"status": "succeeded", "receipt": {}, "outputs": {"data": output}},
            ),
            executor.post(
                f"{base}/finish",
                content=b'{"status": "failed", "receipt": {"x": NaN}}',
                headers={"Content-Type": "application/json"},
            ),
        ]

    assert [r.status_code for r in responses] == [422, 422, 422, 422]
    assert alice.http.get(f"/v1/tasks/{task_id}").json()["status"] == "running"
    assert alice.http.get(f"/v1/tasks/{task_id}/events").json() == []


def test_finish_with_joint_owners_outside_the_contract_records_nothing(world: World) -> None:
    """Was a 500 (an unknown joint owner violated a foreign key after outputs were half written)."""
    api, alice, token = world.api, world.alice, world.executor_token
    task_id = leased_task(api, alice, token)["task_id"]
    base = f"/v1/executor/tasks/{task_id}"
    output = {"ciphertext_sha256": "a" * 64, "wrapped_keys": {}, "joint_owners": ["nobody"]}
    with AppClient(api.app, token=token) as executor:
        assert executor.put(f"{base}/outputs/data", content=b"sealed").status_code == 200
        response = executor.post(
            f"{base}/finish",
            json={"status": "succeeded", "receipt": {}, "outputs": {"data": output}},
        )

    assert response.status_code == 422
    assert "joint owners differ from the contract" in response.json()["error"]["message"]
    assert alice.http.get(f"/v1/tasks/{task_id}/outputs").json() == []
    assert alice.http.get(f"/v1/tasks/{task_id}").json()["status"] == "running"


def test_unparseable_body_is_a_422_in_the_error_shape(world: World) -> None:
    response = _post(world, "/v1/datasets", b'{"name": "\xff\xfe"}')

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid",
        "message": "request body could not be parsed; send UTF-8 JSON",
    }


def test_validation_errors_never_echo_the_submitted_value(api: Api) -> None:
    """FastAPI's default 422 body repeats the input: here a (short) password and a key."""
    secret = "hunter2"
    body = {"username": "eve", "password": secret, "sign_pk": "k" * 70, "enc_pk": secret * 2}

    response = api.anon.post("/v1/users", json=body)

    assert response.status_code == 422
    assert secret not in response.text and "k" * 70 not in response.text
    assert "password" in response.json()["error"]["message"]
