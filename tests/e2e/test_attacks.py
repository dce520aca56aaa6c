"""A hostile operator edits the database and blob store directly; the enclave must refuse.

Each test plays the operator: it changes what the control plane holds (task state, approvals,
wrapped keys, ciphertext) and checks that the enclave fails the task with a reason that names the
check, and that no output is produced.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from teeflow.client import ApiError, Client
from teeflow.crypto import DataKey, seal_bytes, sha256_hex
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, operator_db


def _echo_task(alice: Client, bank: Client, payload: bytes) -> dict[str, Any]:
    dataset = bank.upload_dataset(payload, name="bank.csv", kind="other")
    return alice.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["bank"]}}
    )


def _force_queue(platform: LocalPlatform, task_id: str) -> None:
    with operator_db(platform) as db:
        db.execute("UPDATE tasks SET status = 'queued' WHERE task_id = ?", (task_id,))


def test_task_marked_approved_in_the_database_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task = _echo_task(alice, bank, b"secret rows\n")
    alice.approve(task["id"])  # bank never approves

    _force_queue(platform, task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "'bank' has not approved" in done["failure_reason"]
    assert alice.http.get(f"/v1/tasks/{task['id']}/outputs").json() == []


def test_swapped_signature_is_refused(member: MemberFactory, platform: LocalPlatform) -> None:
    alice, bank = member("alice"), member("bank")
    other = _echo_task(alice, bank, b"other rows\n")
    bank.approve(other["id"])  # a genuine signature by bank, for another contract
    task = _echo_task(alice, bank, b"target rows\n")
    alice.approve(task["id"])
    bank_keys = bank.approve(task["id"])  # bank approves, then the operator swaps the signature
    assert bank_keys["status"] == "approved"

    with operator_db(platform) as db:
        (signature,) = db.execute(
            "SELECT signature FROM approvals WHERE task_id = ? AND username = 'bank'",
            (other["id"],),
        ).fetchone()
        db.execute(
            "UPDATE approvals SET signature = ? WHERE task_id = ? AND username = 'bank'",
            (signature, task["id"]),
        )
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "approval of 'bank' does not verify" in done["failure_reason"]


def test_wrapped_key_from_another_task_does_not_unwrap(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(b"shared rows\n", name="bank.csv", kind="other")
    proposals = [
        alice.propose(
            "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["bank"]}}
        )
        for _ in range(2)
    ]
    for task in proposals:
        alice.approve(task["id"])
        bank.approve(task["id"])
    first, second = proposals

    with operator_db(platform) as db:
        (wrapped,) = db.execute(
            "SELECT wrapped_keys FROM approvals WHERE task_id = ? AND username = 'bank'",
            (first["id"],),
        ).fetchone()
        db.execute(
            "UPDATE approvals SET wrapped_keys = ? WHERE task_id = ? AND username = 'bank'",
            (wrapped, second["id"]),
        )
    assert json.loads(wrapped)["data"]  # the same slot, the same data key, another contract
    alice.run(second["id"])
    done = alice.wait(second["id"], timeout=60)

    assert done["status"] == "failed"
    assert "does not unwrap for this contract" in done["failure_reason"]


def test_ciphertext_changed_after_approval_fails_the_hash_check(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task = _echo_task(alice, bank, b"approved rows\n")
    substitute = bank.upload_dataset(b"substituted rows\n", name="other.csv", kind="other")
    alice.approve(task["id"])
    bank.approve(task["id"])

    approved_id = task["contract"]["inputs"]["data"]["dataset_id"]
    blobs = platform.data_dir / "blobs" / "datasets"
    (blobs / approved_id).write_bytes((blobs / substitute["id"]).read_bytes())
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "differs from the approved" in done["failure_reason"]


def _upload_version_1(bank: Client, payload: bytes, key: DataKey) -> dict[str, Any]:
    """A dataset as clients uploaded it before sealed format 2: SHA-256 content digest."""
    created = bank.http.post("/v1/datasets", json={"name": "old.csv", "kind": "table"})
    created.raise_for_status()
    dataset_id = created.json()["id"]
    sealed = seal_bytes(payload, key, digest="sha256")
    digest = sha256_hex(sealed)
    bank.home.save_dataset_key(dataset_id, key, ciphertext_sha256=digest, name="old.csv")
    stored = bank.http.put(
        f"/v1/datasets/{dataset_id}/content", content=sealed, headers={"X-Content-SHA256": digest}
    )
    stored.raise_for_status()
    record: dict[str, Any] = stored.json()
    return record


def test_a_dataset_sealed_in_version_1_still_runs(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    old = _upload_version_1(bank, b"rows sealed before BLAKE3\n", DataKey.generate())
    task = alice.propose(
        "echo", inputs={"data": old["id"]}, outputs={"data": {"recipients": ["bank"]}}
    )
    alice.approve(task["id"])
    bank.approve(task["id"])

    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert old["ciphertext_sha256"] == task["contract"]["inputs"]["data"]["ciphertext_sha256"]
    assert not old["ciphertext_sha256"].startswith("blake3:")
    assert done["status"] == "succeeded", done["failure_reason"]
    assert bank.output(task["id"], "data") == b"rows sealed before BLAKE3\n"
    (output,) = bank.http.get(f"/v1/tasks/{task['id']}/outputs").json()
    assert output["ciphertext_sha256"].startswith("blake3:")  # new files are version 2


def test_an_approved_blake3_digest_refuses_the_same_data_resealed_in_version_1(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    # The owner holds the key and reseals the very same rows as a version 1 file (SHA-256): the
    # enclave must hash with the algorithm the contract names, not the one the file announces.
    alice, bank = member("alice"), member("bank")
    task = _echo_task(alice, bank, b"approved rows\n")
    approved = task["contract"]["inputs"]["data"]
    assert approved["ciphertext_sha256"].startswith("blake3:")
    alice.approve(task["id"])
    bank.approve(task["id"])
    key = bank.home.dataset_key(approved["dataset_id"])
    assert key is not None
    downgraded = seal_bytes(b"approved rows\n", key, digest="sha256")

    (platform.data_dir / "blobs" / "datasets" / approved["dataset_id"]).write_bytes(downgraded)
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "differs from the approved" in done["failure_reason"]


def test_joint_output_stays_in_the_enclave_and_needs_every_owner(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank, shop = member("alice"), member("bank"), member("shop")
    bank_ds = bank.upload_dataset(b"id,amount\nu1,5\nu2,6\n", name="b.csv", kind="table")
    shop_ds = shop.upload_dataset(b"id,amount\nu2,1\nu3,9\n", name="s.csv", kind="table")
    produce = alice.propose(
        "private-join-sum",
        inputs={"bank": bank_ds["id"], "shop": shop_ds["id"]},
        outputs={"result": {"joint_owners": ["bank", "shop"]}},
    )
    for client in (alice, bank, shop):
        client.approve(produce["id"])
    alice.run(produce["id"])
    produced = alice.wait(produce["id"], timeout=60)
    assert produced["status"] == "succeeded", produced["failure_reason"]
    (joint,) = [o for o in bank.http.get(f"/v1/tasks/{produce['id']}/outputs").json()]
    assert joint["joint_owners"] == ["bank", "shop"] and joint["recipients"] == []

    with pytest.raises(ApiError) as download:
        bank.output(produce["id"], "result")
    assert download.value.status == 403
    assert bank.http.get(f"/v1/datasets/{joint['dataset_id']}/content").status_code == 403

    use = bank.propose(
        "echo", inputs={"joint": joint["dataset_id"]}, outputs={"joint": {"recipients": ["bank"]}}
    )
    assert sorted(use["contract"]["participants"]) == ["bank", "shop"]
    bank.approve(use["id"])
    _force_queue(platform, use["id"])  # the operator skips shop's approval
    refused = bank.wait(use["id"], timeout=60)
    assert refused["status"] == "failed" and "'shop' has not approved" in refused["failure_reason"]

    again = bank.propose(
        "echo", inputs={"joint": joint["dataset_id"]}, outputs={"joint": {"recipients": ["bank"]}}
    )
    bank.approve(again["id"])
    shop.approve(again["id"])
    bank.run(again["id"])
    done = bank.wait(again["id"], timeout=60)
    assert done["status"] == "succeeded", done["failure_reason"]
    assert bank.output(again["id"], "joint") == b"id,amount\nu2,7\n"
