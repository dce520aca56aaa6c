"""Uploads over TEEFLOW_MAX_UPLOAD_BYTES get 413 and leave nothing behind.

Both with a Content-Length (refused before a byte is stored) and streamed without one (refused
once the stream passes the limit): no blob, no temporary file, no ready dataset, no audit entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._asgi import AppClient
from .conftest import Api, Member, leased_task, open_api

LIMIT = 4096
MESSAGE = f"upload exceeds the limit of {LIMIT} bytes"


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _as_sent(body: bytes, how: str) -> bytes | list[bytes]:
    """``content=`` for the client: bytes carry a Content-Length; a list streams chunked."""
    return (
        body if how == "content-length" else [body[i : i + 1000] for i in range(0, len(body), 1000)]
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Member]]:
    with open_api(tmp_path_factory.mktemp("limits"), max_upload_bytes=LIMIT) as api:
        yield api, api.member("alice")


def _create(member: Member, kind: str) -> dict[str, Any]:
    response = member.http.post("/v1/datasets", json={"name": f"big-{kind}", "kind": kind})
    assert response.status_code == 201
    created: dict[str, Any] = response.json()
    return created


@pytest.mark.parametrize("how", ["content-length", "chunked"])
@pytest.mark.parametrize("kind", ["table", "function"])
def test_oversized_upload_is_413_and_stores_nothing(
    small: tuple[Api, Member], how: str, kind: str
) -> None:
    api, alice = small
    dataset = _create(alice, kind)
    before = _files(api.data_dir / "blobs")

    response = alice.http.put(
        f"/v1/datasets/{dataset['id']}/content", content=_as_sent(b"x" * (LIMIT + 1), how)
    )

    assert response.status_code == 413
    assert response.json()["error"] == {"code": "too_large", "message": MESSAGE}
    assert ("content-length" in response.request.headers) == (how == "content-length")
    assert _files(api.data_dir / "blobs") == before  # no blob and no .tmp- part file
    assert not any(dataset["id"] in str(p) or ".tmp-" in p.name for p in before)
    listed = {d["id"]: (d["state"], d["size"]) for d in alice.http.get("/v1/datasets").json()}
    assert listed[dataset["id"]] == ("pending", None)
    audit = alice.http.get("/v1/audit").json()
    assert dataset["id"] not in {e["subject"] for e in audit if e["action"] == "dataset.upload"}
    if kind == "function":  # a function cannot be registered on the refused source
        function = {
            "name": "big", "code_sha256": "0" * 64, "sealed": True,
            "source_dataset_id": dataset["id"],
        }  # fmt: skip
        assert alice.http.post("/v1/functions", json=function).status_code == 422


@pytest.mark.parametrize("how", ["content-length", "chunked"])
def test_upload_at_the_limit_is_stored_after_a_refused_one(
    small: tuple[Api, Member], how: str
) -> None:
    api, alice = small
    dataset = _create(alice, "table")
    url = f"/v1/datasets/{dataset['id']}/content"
    assert alice.http.put(url, content=_as_sent(b"y" * (LIMIT + 1), how)).status_code == 413

    response = alice.http.put(url, content=_as_sent(b"y" * LIMIT, how))

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["size"]) == ("ready", LIMIT)
    stored = api.data_dir / "blobs" / "datasets" / dataset["id"]
    assert stored.read_bytes() == b"y" * LIMIT
    assert not [p for p in _files(api.data_dir / "blobs") if ".tmp-" in p.name]


def test_declared_length_over_the_limit_is_refused_before_reading(
    small: tuple[Api, Member],
) -> None:
    """A Content-Length over the limit is refused on the header alone: the body is not stored."""
    api, alice = small
    dataset = _create(alice, "table")
    before = _files(api.data_dir / "blobs")

    response = alice.http.put(
        f"/v1/datasets/{dataset['id']}/content",
        content=[b"z" * 10],
        headers={"Content-Length": str(LIMIT * 1000)},
    )

    assert response.status_code == 413
    assert _files(api.data_dir / "blobs") == before


@pytest.mark.parametrize("how", ["content-length", "chunked"])
@pytest.mark.parametrize("what", ["outputs/data", "checkpoint"])
def test_oversized_executor_uploads_are_413_and_store_nothing(
    small: tuple[Api, Member], how: str, what: str
) -> None:
    api, alice = small
    token = api.register_executor()
    task_id = leased_task(api, alice, token)["task_id"]
    before = _files(api.data_dir / "blobs")

    with AppClient(api.app, token=token) as executor:
        response = executor.put(
            f"/v1/executor/tasks/{task_id}/{what}", content=_as_sent(b"o" * (LIMIT + 1), how)
        )
        checkpoint = executor.get(f"/v1/executor/tasks/{task_id}/checkpoint")

    assert response.status_code == 413
    assert response.json()["error"]["message"] == MESSAGE
    assert _files(api.data_dir / "blobs") == before
    assert not [p for p in before if task_id in str(p)]  # no output, no checkpoint
    assert checkpoint.status_code == 204


JSON_LIMIT = 8192


@pytest.fixture(scope="module")
def json_small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Member]]:
    with open_api(
        tmp_path_factory.mktemp("json-limits"), max_json_bytes=JSON_LIMIT, max_upload_bytes=1 << 20
    ) as api:
        yield api, api.member("alice")


@pytest.mark.parametrize("how", ["content-length", "chunked"])
def test_oversized_json_body_is_413_and_creates_nothing(
    json_small: tuple[Api, Member], how: str
) -> None:
    _, alice = json_small
    body = b'{"name": "huge", "kind": "table", "description": "' + b"x" * JSON_LIMIT + b'"}'
    before = alice.http.get("/v1/datasets").json()

    response = alice.http.post(
        "/v1/datasets",
        content=_as_sent(body, how),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "TEEFLOW_MAX_JSON_BYTES" in response.json()["error"]["message"]
    assert alice.http.get("/v1/datasets").json() == before


def test_json_limit_leaves_small_bodies_and_streamed_uploads_alone(
    json_small: tuple[Api, Member],
) -> None:
    _, alice = json_small
    dataset = _create(alice, "table")  # a small JSON body passes

    ciphertext = b"y" * (4 * JSON_LIMIT)  # over the JSON limit, under the upload limit
    response = alice.http.put(f"/v1/datasets/{dataset['id']}/content", content=ciphertext)

    assert response.status_code == 200, response.text
