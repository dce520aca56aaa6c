"""Small outputs kept in the database (server/row_blobs.py), on SQLite and PostgreSQL: written
with the finish in one transaction, read, sized and deleted through the blob store interface."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from teeflow.server.blobs import BlobNotFound, LocalBlobStore
from teeflow.server.row_blobs import ROW_PREFIX, RowBackedBlobStore, row_key
from teeflow.server.store import NewOutput, Store

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
CIPHERTEXT = bytes(range(256)) * 3


def _row_output(task_id: str, slot: str, content: bytes) -> NewOutput:
    return NewOutput(
        slot=slot,
        blob_key=row_key(f"outputs/{task_id}/{slot}"),
        ciphertext_sha256="b" * 64,
        size=len(content),
        wrapped_keys={"alice": "w"},
        content=content,
    )


def _leased_task(store: Store) -> str:
    task = store.create_task(
        task_id=uuid.uuid4().hex,
        creator="alice",
        contract={"function": "f"},
        contract_hash="c" * 64,
        participants=["alice"],
        now=T0,
    )
    assert store.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)
    assert store.lease_next(executor_id="x1", now=T0, lease_seconds=60) is not None
    return task.task_id


def _finish(store: Store, task_id: str, executor: str, outputs: list[NewOutput]) -> bool:
    return store.finish(
        task_id=task_id,
        executor_id=executor,
        status="succeeded",
        receipt={"r": 1},
        failure_reason=None,
        now=T0,
        outputs=outputs,
    )


@pytest.fixture
def users(store: Store) -> Store:
    store.create_user(username="alice", password_hash="h", sign_pk="s", enc_pk="e", now=T0)
    return store


@pytest.fixture
def blobs(users: Store, tmp_path: Path) -> RowBackedBlobStore:
    return RowBackedBlobStore(LocalBlobStore(tmp_path / "blobs"), users)


def test_a_finished_output_reads_back_from_its_row(users: Store, blobs: RowBackedBlobStore) -> None:
    task_id = _leased_task(users)
    output = _row_output(task_id, "data", CIPHERTEXT)

    assert _finish(users, task_id, "x1", [output])

    (recorded,) = users.list_outputs(task_id)
    assert recorded.blob_key == output.blob_key and recorded.blob_key.startswith(ROW_PREFIX)
    assert blobs.exists(recorded.blob_key) and blobs.size(recorded.blob_key) == len(CIPHERTEXT)
    with blobs.open(recorded.blob_key) as handle:
        assert handle.read() == CIPHERTEXT
    assert not (blobs.files.exists(f"outputs/{task_id}/data"))  # no file was written


def test_a_finish_without_the_lease_stores_no_row(
    users: Store,
    blobs: RowBackedBlobStore,
) -> None:
    task_id = _leased_task(users)
    output = _row_output(task_id, "data", CIPHERTEXT)

    assert not _finish(users, task_id, "someone-else", [output])

    assert not blobs.exists(output.blob_key)
    with pytest.raises(BlobNotFound):
        blobs.open(output.blob_key)
    with pytest.raises(BlobNotFound):
        blobs.size(output.blob_key)


def test_a_row_blob_is_deleted_like_a_file(
    users: Store,
    blobs: RowBackedBlobStore,
) -> None:
    task_id = _leased_task(users)
    output = _row_output(task_id, "data", b"")  # an empty ciphertext is still a blob
    assert _finish(users, task_id, "x1", [output])
    assert blobs.exists(output.blob_key) and blobs.size(output.blob_key) == 0

    assert blobs.delete(output.blob_key)

    assert not blobs.exists(output.blob_key)
    assert not blobs.delete(output.blob_key)


def test_other_keys_stay_in_the_file_store(blobs: RowBackedBlobStore) -> None:
    with blobs.writer("datasets/d") as writer:
        writer.write(b"sealed")

    assert blobs.files.exists("datasets/d") and blobs.size("datasets/d") == 6
    with blobs.open("datasets/d") as handle:
        assert handle.read() == b"sealed"
    assert blobs.delete("datasets/d") and not blobs.files.exists("datasets/d")


def test_row_blobs_are_written_only_with_their_finish(blobs: RowBackedBlobStore) -> None:
    with pytest.raises(ValueError, match="transaction that records them"):
        blobs.writer(row_key("outputs/t/data"))
    with pytest.raises(ValueError):
        row_key("../escape")
