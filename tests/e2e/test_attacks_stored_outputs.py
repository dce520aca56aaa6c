"""An operator who edits a finished output's stored ciphertext gains nothing.

Small outputs are kept in the control plane's database (server/row_blobs.py); larger ones in the
blob store. Either way the member checks the bytes against the digest the enclave signed in its
receipt, and the control plane's copy into a dataset checks them against the recorded digest.
Real control plane and executor processes (tests/e2e/conftest.py).
"""

from __future__ import annotations

import pytest

from teeflow.client import Client, ClientError
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, echo_task, operator_db, operator_write_output


def _echoed(alice: Client, bank: Client, payload: bytes) -> str:
    task_id = echo_task(alice, bank, payload)
    alice.approve(task_id)
    bank.approve(task_id)
    alice.run(task_id)
    assert alice.wait(task_id, timeout=60)["status"] == "succeeded"
    return task_id


def _stored(platform: LocalPlatform, task_id: str) -> tuple[str, bytes]:
    with operator_db(platform) as db:
        key, content = db.execute(
            "SELECT o.blob_key, r.content FROM outputs o JOIN row_blobs r"
            " ON r.blob_key = o.blob_key WHERE o.task_id = ? AND o.slot = 'data'",
            (task_id,),
        ).fetchone()
    return key, bytes(content)


def test_a_small_output_is_kept_in_the_database_and_reads_back(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _echoed(alice, bank, b"rows kept in the database\n")

    key, _ = _stored(platform, task_id)

    assert key.startswith("rows/")
    assert not (platform.data_dir / "blobs" / "outputs" / task_id).exists()
    assert bank.output(task_id, "data") == b"rows kept in the database\n"


@pytest.mark.parametrize("edit", ["flip a byte", "another task's output"])
def test_an_output_edited_in_its_database_row_is_refused(
    member: MemberFactory, platform: LocalPlatform, edit: str
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _echoed(alice, bank, b"genuine rows\n")
    _, genuine = _stored(platform, task_id)
    if edit == "flip a byte":
        forged = genuine[:-1] + bytes([genuine[-1] ^ 1])
    else:
        forged = _stored(platform, _echoed(alice, bank, b"operator's rows\n"))[1]

    operator_write_output(platform, task_id, "data", forged)

    with pytest.raises(ClientError, match="it was altered"):
        bank.output(task_id, "data")
    copied = bank.http.post(
        f"/v1/tasks/{task_id}/outputs/data/dataset", json={"name": "copy.csv", "kind": "other"}
    )
    assert copied.status_code == 500 and copied.json()["error"]["code"] == "output_corrupt"
