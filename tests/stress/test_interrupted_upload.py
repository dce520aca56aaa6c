"""A dataset upload cut off halfway never leaves a dataset that looks complete.

Over real HTTP, 64 MiB of ciphertext is streamed and then interrupted: once by the client (its body
generator raises, the connection closes) and once by SIGKILLing the control plane mid-stream. The
dataset stays ``pending`` (no hash, no size, unusable as a task input), no blob exists under its
key, and the owner can upload it again. After a client disconnect the server also removes its
temporary file; after a crash the restarted control plane sweeps it. The crash cases restart the
control plane and are marked ``stress``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from teeflow.client import ApiError, Client
from teeflow.server.launcher import LocalPlatform

from .conftest import new_member, server_errors

MIB = 1 << 20
TOTAL = 64 * MIB
CUT_AT = 24 * MIB
_BLOCK = os.urandom(MIB)


class Interrupted(Exception):
    """The client gave up mid-upload."""


def _body(cut: Callable[[], None] | None = None) -> Iterator[bytes]:
    sent = 0
    while sent < TOTAL:
        if cut is not None and sent >= CUT_AT:
            cut()
        yield _BLOCK
        sent += len(_BLOCK)


def _full_sha256() -> str:
    digest = hashlib.sha256()
    for _ in range(TOTAL // MIB):
        digest.update(_BLOCK)
    return digest.hexdigest()


def _new_dataset(owner: Client) -> str:
    response = owner.http.post("/v1/datasets", json={"name": "scans.bin", "kind": "other"})
    response.raise_for_status()
    return str(response.json()["id"])


def _upload(owner: Client, dataset_id: str, body: Iterator[bytes]) -> httpx.Response:
    return owner.http.put(
        f"/v1/datasets/{dataset_id}/content",
        content=body,
        headers={"X-Content-SHA256": _full_sha256(), "Content-Length": str(TOTAL)},
    )


def _blob_files(platform: LocalPlatform) -> tuple[set[str], set[str]]:
    """(complete-looking blobs, temporary files) under the blob directory."""
    root = platform.data_dir / "blobs"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    temporary = {f for f in files if Path(f).name.startswith(".tmp-")}
    return files - temporary, temporary


def _new_errors(platform: LocalPlatform, before: list[str]) -> list[str]:
    return list((Counter(server_errors(platform)) - Counter(before)).elements())


def _assert_not_complete(owner: Client, dataset_id: str, platform: LocalPlatform) -> None:
    listed = {d["id"]: d for d in owner.datasets()}
    assert listed[dataset_id]["state"] == "pending"
    assert listed[dataset_id]["size"] is None and listed[dataset_id]["ciphertext_sha256"] is None
    assert f"datasets/{dataset_id}" not in _blob_files(platform)[0]
    with pytest.raises(ApiError) as refused:
        owner.propose(
            "echo", inputs={"data": dataset_id}, outputs={"data": {"recipients": [owner.username]}}
        )
    assert refused.value.status == 422


def _temp_files_after(platform: LocalPlatform, before: set[str], timeout: float) -> set[str]:
    """Temporary files that were not there before, once they are gone or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while (new := _blob_files(platform)[1] - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    return new


def _reupload(owner: Client, dataset_id: str, platform: LocalPlatform) -> None:
    """The owner uploads the pending dataset again, completely this time."""
    response = _upload(owner, dataset_id, _body())
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ready" and response.json()["size"] == TOTAL
    assert f"datasets/{dataset_id}" in _blob_files(platform)[0]


def _give_up() -> None:
    raise Interrupted


def _kill_server_mid_upload(platform: LocalPlatform, owner: Client, dataset_id: str) -> None:
    server = platform.server
    assert server is not None

    def crash() -> None:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)

    with pytest.raises(httpx.TransportError):
        _upload(owner, dataset_id, _body(crash))
    platform.restart_server()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    # One control plane alone: it may sweep every temporary upload file when it (re)starts.
    env = {"TEEFLOW_STALE_UPLOAD_SECONDS": "0"}
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1, env=env) as running:
        yield running


@pytest.fixture
def owner(platform: LocalPlatform, tmp_path: Path) -> Iterator[Client]:
    client = new_member(platform, tmp_path / "home", f"owner-{uuid.uuid4().hex[:8]}")
    yield client
    client.close()


def test_client_disconnect_mid_upload_leaves_nothing(
    platform: LocalPlatform, owner: Client
) -> None:
    dataset_id = _new_dataset(owner)
    temporary, errors = _blob_files(platform)[1], server_errors(platform)

    with pytest.raises(Interrupted):
        _upload(owner, dataset_id, _body(_give_up))

    assert _temp_files_after(platform, temporary, timeout=20.0) == set()
    _assert_not_complete(owner, dataset_id, platform)
    assert _new_errors(platform, errors) == []
    _reupload(owner, dataset_id, platform)
    assert _blob_files(platform)[1] <= temporary


def test_client_disconnect_is_not_an_unhandled_server_error(
    platform: LocalPlatform, owner: Client
) -> None:
    temporary, errors = _blob_files(platform)[1], server_errors(platform)

    with pytest.raises(Interrupted):
        _upload(owner, _new_dataset(owner), _body(_give_up))
    _temp_files_after(platform, temporary, timeout=20.0)

    assert _new_errors(platform, errors) == []


@pytest.mark.stress
def test_server_killed_mid_upload_leaves_no_complete_blob(
    platform: LocalPlatform, owner: Client
) -> None:
    dataset_id = _new_dataset(owner)
    complete = _blob_files(platform)[0]

    _kill_server_mid_upload(platform, owner, dataset_id)

    # The owner's token survived the restart (tokens live in the database, hashed).
    _assert_not_complete(owner, dataset_id, platform)
    assert _blob_files(platform)[0] == complete
    _reupload(owner, dataset_id, platform)


@pytest.mark.stress
def test_server_restart_sweeps_temporary_files_of_a_crashed_upload(
    platform: LocalPlatform, owner: Client
) -> None:
    temporary = _blob_files(platform)[1]

    _kill_server_mid_upload(platform, owner, _new_dataset(owner))

    assert _temp_files_after(platform, temporary, timeout=1.0) == set()
