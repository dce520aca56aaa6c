"""Names and ids that look like paths are refused or stored as plain names, never used as paths.

Every hostile name goes through the API; afterwards no file may exist outside the data directory
that was not there before, and the sentinel files around it are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._asgi import AppClient
from .conftest import Api, Member, leased_task, open_api, upload_dataset

TRAVERSALS = [
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2F..%2Fsentinel",
    "name\x00.csv",
    "..",
    ".",
    "~root",
    "x" * 5000,
]
REFUSED_NAMES = {"../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "name\x00.csv"}


@pytest.fixture(scope="module")
def jail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Member, Path]]:
    """An app whose data directory sits two levels down in a tree of sentinel files."""
    root = tmp_path_factory.mktemp("jail")
    for sentinel in ("sentinel", "etc/passwd", "a/sentinel"):
        (root / sentinel).parent.mkdir(parents=True, exist_ok=True)
        (root / sentinel).write_text("untouched")
    with open_api(root / "a" / "data") as api:
        alice = api.member("alice")
        api.register_executor()
        outside = _outside(root, api.data_dir)
        yield api, alice, root
        assert _outside(root, api.data_dir) == outside, "a file outside the data dir changed"


def _outside(root: Path, data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_relative_to(data_dir)
    }


def _ready(member: Member) -> str:
    """Id of a ready dataset of ``member`` (made once)."""
    for dataset in member.http.get("/v1/datasets").json():
        if dataset["name"] == "ready.bin" and dataset["state"] == "ready":
            return str(dataset["id"])
    return str(upload_dataset(member, b"sealed", name="ready.bin")["id"])


def _error(response: Any) -> str:
    assert 400 <= response.status_code < 500, response.text
    message: str = response.json()["error"]["message"]
    assert message
    return message


@pytest.mark.parametrize("name", TRAVERSALS, ids=range(len(TRAVERSALS)))
def test_dataset_names_are_refused_or_stored_only_as_names(
    jail: tuple[Api, Member, Path], name: str
) -> None:
    api, alice, _ = jail

    response = alice.http.post("/v1/datasets", json={"name": name, "kind": "table"})

    if name in REFUSED_NAMES or len(name) > 200:
        assert response.status_code == 422
        assert "name" in _error(response)
        return
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == name
    uploaded = alice.http.put(f"/v1/datasets/{dataset['id']}/content", content=b"sealed")
    assert uploaded.status_code == 200
    # The blob is keyed by the server's id, never by the member's name.
    assert (api.data_dir / "blobs" / "datasets" / dataset["id"]).read_bytes() == b"sealed"


@pytest.mark.parametrize("name", TRAVERSALS, ids=range(len(TRAVERSALS)))
def test_function_and_slot_names_that_look_like_paths_are_refused(
    jail: tuple[Api, Member, Path], name: str
) -> None:
    _, alice, _ = jail
    body = {"code_sha256": "0" * 64, "sealed": False, "source_dataset_id": _ready(alice)}

    as_name = alice.http.post("/v1/functions", json={**body, "name": name})
    as_input = alice.http.post("/v1/functions", json={**body, "name": "f", "inputs": [name]})
    as_output = alice.http.post("/v1/functions", json={**body, "name": "f", "outputs": [name]})

    assert as_name.status_code == 422 and "name" in _error(as_name)
    assert as_input.status_code == 422 and "slot name" in _error(as_input)
    assert as_output.status_code == 422 and "slot name" in _error(as_output)


@pytest.mark.parametrize("slot", TRAVERSALS, ids=range(len(TRAVERSALS)))
def test_task_slots_that_look_like_paths_are_refused(
    jail: tuple[Api, Member, Path], slot: str
) -> None:
    _, alice, _ = jail
    dataset_id = _ready(alice)
    recipients = {"recipients": ["alice"]}

    bad_input = alice.http.post(
        "/v1/tasks",
        json={"function": "echo", "inputs": {slot: dataset_id}, "outputs": {"o": recipients}},
    )
    bad_output = alice.http.post(
        "/v1/tasks",
        json={"function": "echo", "inputs": {"i": dataset_id}, "outputs": {slot: recipients}},
    )

    assert bad_input.status_code == 422 and "slot" in _error(bad_input)
    assert bad_output.status_code == 422 and "slot" in _error(bad_output)


HOSTILE_IDS = [
    "..%2F..%2Fsentinel",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E",
    "..%5C..%5Csentinel",
    "%00",
    "x%00y",
    "%2Fetc%2Fpasswd",
    "~",
    "x" * 5000,
]


@pytest.mark.parametrize("raw_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_ids_in_urls_are_not_found(jail: tuple[Api, Member, Path], raw_id: str) -> None:
    _, alice, _ = jail
    urls = [
        ("GET", f"/v1/datasets/{raw_id}"),
        ("GET", f"/v1/datasets/{raw_id}/content"),
        ("PUT", f"/v1/datasets/{raw_id}/content"),
        ("GET", f"/v1/tasks/{raw_id}"),
        ("GET", f"/v1/tasks/{raw_id}/outputs/{raw_id}/content"),
        ("GET", f"/v1/tasks/{raw_id}/outputs/{raw_id}/key"),
        ("POST", f"/v1/tasks/{raw_id}/approve"),
        ("GET", f"/v1/users/{raw_id}"),
    ]

    for method, url in urls:
        response = alice.http.request(method, url, content=b"sealed")
        assert response.status_code in (404, 405, 422), (method, url, response.text)
        assert response.json()["error"]["code"] in ("not_found", "method_not_allowed", "invalid")


def test_executor_output_and_input_slots_that_look_like_paths_are_refused(
    jail: tuple[Api, Member, Path],
) -> None:
    api, alice, _ = jail
    token = api.register_executor()
    task_id = leased_task(api, alice, token)["task_id"]
    before = sorted(p for p in api.data_dir.rglob("*") if p.is_file())

    with AppClient(api.app, token=token) as executor:
        for raw_slot in HOSTILE_IDS:
            put = executor.put(f"/v1/executor/tasks/{task_id}/outputs/{raw_slot}", content=b"o")
            get = executor.get(f"/v1/executor/tasks/{task_id}/inputs/{raw_slot}")
            assert put.status_code in (404, 422), (raw_slot, put.text)
            assert get.status_code == 404, (raw_slot, get.text)

    changed = sorted(p for p in api.data_dir.rglob("*") if p.is_file())
    assert [p for p in changed if p not in before and "blobs" in p.parts] == []
