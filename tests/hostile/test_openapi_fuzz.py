"""Schemathesis against the control plane's own OpenAPI schema, in-process, signed in.

Every operation gets schema-driven valid and invalid requests carrying a real member's bearer
token (executor routes: a registered executor's token), once with generated path parameters and
once with the ids of real objects (a proposed task, a leased task, a ready dataset), so the
handlers behind the 404s run too. Each response must not be a 5xx, must use a status code the
schema documents, must match the documented content type, headers and body schema, and a
request the schema forbids must be refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.auths import AuthStorage
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .conftest import PASSWORD, Api, leased_task, open_api, propose_echo, upload_dataset

EXAMPLES = 4  # per operation, mode and set of path parameters
# Router tags (GET /v1/enclave and GET /v1/audit carry "executors" besides their own tag).
TAGS = ["accounts", "datasets", "functions", "tasks", "executors", "health"]
UNAUTHENTICATED = {"POST /v1/users", "POST /v1/sessions", "POST /v1/executors", "GET /v1/health"}


@dataclass
class Fuzzed:
    api: Api
    member_token: str
    logout_token: str
    executor_token: str
    ids: dict[str, dict[str, str]]
    statuses: Counter[tuple[str, int]]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    # Long-polls are held at most half a second, so fuzzed `wait`s stay short.
    with open_api(
        tmp_path_factory.mktemp("fuzz"),
        max_upload_bytes=1 << 16,
        lease_seconds=0.5,
        max_wait_seconds=0.5,
    ) as api:
        alice = api.member("alice")
        executor_token = api.register_executor()
        leased = leased_task(api, alice, executor_token)
        proposed = propose_echo(alice, upload_dataset(alice, b"ciphertext")["id"])
        # DELETE /v1/sessions revokes the token it is sent with: give it one of its own.
        login = {"username": "alice", "password": PASSWORD}
        logout_token = api.anon.post("/v1/sessions", json=login).json()["token"]
        ids = {
            "member": {
                "task_id": proposed["id"],
                "dataset_id": proposed["contract"]["inputs"]["data"]["dataset_id"],
                "slot": "data",
                "username": "alice",
            },
            "executor": {"task_id": leased["task_id"], "slot": "data"},
        }
        yield Fuzzed(api, alice.token, logout_token, executor_token, ids, Counter())


@pytest.fixture(scope="module")
def fuzz_schema(fuzzed: Fuzzed) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed.api.app)


def _bearer(token: str) -> AuthStorage:
    """Schemathesis auth that signs every case in with ``token`` (known to be real auth)."""

    class Bearer:
        def get(self, case: Any, context: Any) -> str:
            return token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    storage = AuthStorage()
    storage.auth(refresh_interval=None)(Bearer)
    return storage


def _fuzz(operation: Any, fuzzed: Fuzzed, path_parameters: dict[str, str] | None) -> None:
    if operation.path.startswith("/v1/executor/"):
        token = fuzzed.executor_token
    elif operation.label == "DELETE /v1/sessions":
        token = fuzzed.logout_token
    else:
        token = fuzzed.member_token
    fixed: dict[str, Any] = {"auth_storage": _bearer(token)}
    if path_parameters:
        fixed["path_parameters"] = path_parameters
    # Valid cases always carry the token; invalid ones may also drop or garble it.
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @given(case=operation.as_strategy(mode, **fixed))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # Not positive_data_acceptance: the schema cannot say that a referenced dataset or
            # function must exist and be yours, which the API answers with a documented 422.
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            fuzzed.statuses[operation.label, response.status_code] += 1

        try:
            run()
        except Unsatisfiable:
            if mode is schemathesis.GenerationMode.POSITIVE:
                raise
            # Nothing in the request can be made invalid (GET /v1/health takes no input).


@pytest.mark.parametrize("tag", TAGS)
def test_operations_conform_to_the_schema(tag: str, fuzz_schema: Any, fuzzed: Fuzzed) -> None:
    operations = [r.ok() for r in fuzz_schema.include(tag=tag).get_all_operations()]
    assert operations, f"no operation is tagged {tag!r}"
    failures = []
    for operation in operations:
        role = "executor" if operation.path.startswith("/v1/executor/") else "member"
        names = {p.name for p in operation.path_parameters}
        real = {k: v for k, v in fuzzed.ids[role].items() if k in names}
        for path_parameters in [None, real] if real else [None]:
            try:
                _fuzz(operation, fuzzed, path_parameters)
            except Exception as exc:
                failures.append(f"{operation.label} {path_parameters or ''}: {exc}")
    assert not failures, "\n\n".join(failures)

    # The fuzzing ran signed in: every authenticated operation got past authentication.
    for operation in operations:
        if operation.label in UNAUTHENTICATED | {"DELETE /v1/sessions"}:
            continue
        answered = {s for (label, s), n in fuzzed.statuses.items() if label == operation.label}
        assert answered - {401}, f"{operation.label} only ever answered 401"


def test_every_operation_is_fuzzed(fuzz_schema: Any) -> None:
    untagged = [
        r.ok().label
        for r in fuzz_schema.get_all_operations()
        if not set(r.ok().tags or []) & set(TAGS)
    ]
    assert untagged == [], "add their tag to TAGS"
