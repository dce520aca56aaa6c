"""Attacks on outputs a member keeps as its own dataset (``dataset from-output``), over real
HTTP with real executor processes.

The operator edits the database (dataset records, ``kept_as``, an output's wrapped keys and joint
owners, receipts); a malicious member keeps outputs that are not its own, alone or with the
operator's help, or proposes a model that carries a partner's column. Each test asserts the
guarantee holds (docs/threat-model.md).
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from teeflow.client import Client, ClientError
from teeflow.client._outputs import open_output_key
from teeflow.crypto import DataKey
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, operator_db
from .test_dl_correct import BANK, BUREAU, _bytes, _csv, _run, _table


def _echo(creator: Client, data: bytes, outputs: dict[str, object], approvers: list[Client]) -> str:
    dataset = creator.upload_dataset(data, name="rows.csv", kind="table")
    return _run(
        creator, "echo", inputs={"data": dataset["id"]}, outputs=outputs, approvers=approvers
    )["id"]


def _signed_hash(client: Client, task_id: str, slot: str) -> str:
    body = client.receipt(task_id)["body"]
    digest: str = body["outputs"][slot]["ciphertext_sha256"]
    return digest


def test_an_operator_who_passes_off_an_existing_dataset_as_the_kept_output_replaces_no_key(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    """The control plane answers "you kept this before" with another dataset of the member's,
    relabelled (produced_by_task, slot, the signed hash): the member's key for that dataset must
    not be overwritten by the output's key (the member would lose its own data)."""
    alice, carol = member("alice"), member("carol")
    task = _echo(alice, b"id\nalice-row\n", {"data": {"recipients": ["carol"]}}, [alice, carol])
    own = carol.upload_dataset(b"id\ncarol-only-copy\n", name="carol's own", kind="table")
    own_key = carol.home.dataset_record(own["id"])
    with operator_db(platform) as db:
        db.execute(
            "UPDATE datasets SET produced_by_task = ?, meta = ?, ciphertext_sha256 = ? "
            "WHERE dataset_id = ?",
            (
                task,
                json.dumps({"slot": "data"}),
                _signed_hash(carol, task, "data"),
                own["id"],
            ),
        )

    with pytest.raises(ClientError, match="already holds a different key"):
        carol.keep_output(task, "data", kind="table")

    assert carol.home.dataset_record(own["id"]) == own_key


def test_a_member_the_operator_adds_to_an_outputs_keys_keeps_nothing_it_can_open(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    """Mallory, helped by the operator (added to the task and to the output's wrapped keys),
    copies carol's output into a dataset of hers: she gets ciphertext and no key."""
    alice, carol, mallory = member("alice"), member("carol"), member("mallory")
    task = _echo(alice, b"id\nsecret-row\n", {"data": {"recipients": ["carol"]}}, [alice, carol])
    refused = mallory.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "x"})
    assert refused.status_code in (403, 404)
    with operator_db(platform) as db:
        db.execute(
            "INSERT INTO task_participants (task_id, username, position) VALUES (?, ?, 9)",
            (task, "mallory"),
        )
        db.execute(
            "UPDATE outputs SET wrapped_keys = json_set(wrapped_keys, '$.mallory', "
            "json_extract(wrapped_keys, '$.carol')) WHERE task_id = ?",
            (task,),
        )

    copied = mallory.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "x"})
    assert copied.status_code == 201  # the control plane believes its database ...
    mallory.attest()  # she trusts the enclave, so the receipt is not what stops her
    with pytest.raises(ClientError, match="not addressed to you"):
        mallory.keep_output(task, "data", kind="table")
    wrapped = mallory.http.get(f"/v1/tasks/{task}/outputs/data/key").json()["wrapped_key"]
    with pytest.raises(ClientError, match="does not open for you"):
        open_output_key(mallory, mallory.task(task), "data", wrapped)
    assert mallory.home.dataset_record(copied.json()["id"]) is None  # ... and mallory has no key
    proposed = mallory.propose(
        "echo",
        inputs={"data": copied.json()["id"]},
        outputs={"data": {"recipients": ["mallory"]}},
        arguments={},
        disclosure={"progress": [], "errors": ["mallory"]},
    )
    with pytest.raises(ClientError, match="hold no key"):
        mallory.approve(proposed["id"])


def test_a_joint_output_the_operator_copies_to_one_owner_does_not_run_for_her(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    """The operator clears a joint output's owners so alice keeps it alone, then hands the
    enclave the joint output's own wrapped key as alice's input key: it does not unwrap, the
    task fails and alice gets nothing."""
    alice, carol = member("alice"), member("carol")
    task = _echo(
        alice, b"id\njoint-row\n", {"data": {"joint_owners": ["alice", "carol"]}}, [alice, carol]
    )
    with operator_db(platform) as db:
        (enclave_wrap,) = db.execute(
            "SELECT json_extract(wrapped_keys, '$.enclave') FROM outputs WHERE task_id = ?",
            (task,),
        ).fetchone()
        db.execute(
            "UPDATE outputs SET joint_owners = NULL, wrapped_keys = json_set(wrapped_keys, "
            "'$.alice', json_extract(wrapped_keys, '$.enclave')) WHERE task_id = ?",
            (task,),
        )
    with pytest.raises(ClientError, match="stays sealed to the enclave"):
        alice.keep_output(task, "data", kind="table")  # the signed contract says joint
    copied = alice.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "mine"})
    assert copied.status_code == 201
    copy = copied.json()
    # Malicious alice pretends to hold a key for the copy, so that her client approves.
    alice.home.save_dataset_key(
        copy["id"],
        DataKey.generate(),
        ciphertext_sha256=copy["ciphertext_sha256"],
        name="copy",
    )
    proposed = alice.propose(
        "echo",
        inputs={"data": copy["id"]},
        outputs={"data": {"recipients": ["alice"]}},
        arguments={},
        disclosure={"progress": [], "errors": ["alice"]},
    )
    alice.approve(proposed["id"])
    with operator_db(platform) as db:
        db.execute(
            "UPDATE approvals SET wrapped_keys = json_set(wrapped_keys, '$.data', ?) "
            "WHERE task_id = ? AND username = 'alice'",
            (enclave_wrap, proposed["id"]),
        )
    alice.run(proposed["id"])
    done = alice.wait(proposed["id"], timeout=120)

    assert done["status"] == "failed"
    assert "does not unwrap" in str(done["failure_reason"])
    assert not alice.http.get(f"/v1/tasks/{proposed['id']}/outputs").json()


def test_a_receipt_whose_key_id_the_operator_rewrote_is_refused(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    """Rewriting the key id (epoch) a receipt names breaks its signature: no download, no
    keep, and the joint output it made is refused as a later input."""
    alice, carol = member("alice"), member("carol")
    task = _echo(alice, b"id\nepoch-row\n", {"data": {"recipients": ["carol"]}}, [alice, carol])
    joint = _echo(
        alice, b"id\nepoch-joint\n", {"data": {"joint_owners": ["alice", "carol"]}}, [alice, carol]
    )
    with operator_db(platform) as db:
        for task_id in (task, joint):
            db.execute(
                "UPDATE tasks SET receipt = json_set(receipt, '$.body.key_id.epoch', 7) "
                "WHERE task_id = ?",
                (task_id,),
            )

    for action in (
        lambda: carol.receipt(task),
        lambda: carol.output(task, "data"),
        lambda: carol.keep_output(task, "data", kind="table"),
    ):
        with pytest.raises(ClientError, match="receipt does not verify"):
            action()
    (joint_dataset,) = [o["dataset_id"] for o in alice.outputs(joint)]
    proposed = alice.propose(
        "echo",
        inputs={"data": joint_dataset},
        outputs={"data": {"joint_owners": ["alice", "carol"]}},
        arguments={},
        disclosure={"progress": [], "errors": ["alice"]},
    )
    for client in (alice, carol):
        client.approve(proposed["id"])
    alice.run(proposed["id"])
    done = alice.wait(proposed["id"], timeout=120)
    assert done["status"] == "failed"
    assert "receipt" in str(done["failure_reason"])


def test_a_model_trained_to_predict_a_partners_column_is_named_in_its_review(
    member: MemberFactory,
) -> None:
    """The bank proposes to train on the joined table with the *bureau's* text column as the
    label and the model sent to itself alone: the model file carries that column's values (its
    class names) and predicts it. The bureau's review names that column, not only its features."""
    bank, bureau = member("bank"), member("bureau")
    frame = _table(seed=3)
    bank_ds = bank.upload_dataset(_csv(frame[BANK]), name="bank", kind="table")
    bureau_ds = bureau.upload_dataset(_csv(frame[BUREAU]), name="bureau", kind="table")
    proposed = bank.propose(
        "tabular-train",
        inputs={"bank": bank_ds["id"], "bureau": bureau_ds["id"]},
        outputs={"model": {"recipients": ["bank"]}},
        arguments={"label_column": "region", "id_column": "id", "epochs": 2, "seed": 0},
        disclosure={"progress": [], "errors": ["bank"]},
    )

    warnings = bureau.review(bureau.task(proposed["id"]))
    assert [w for w in warnings if "model file delivered to bank" in w and "'region'" in w], (
        warnings
    )
    assert not [w for w in bank.review(bank.task(proposed["id"])) if "model file" in w]

    # The leak is real: the bank's model file holds the bureau's values of 'region'.
    for client in (bank, bureau):
        client.approve(proposed["id"])
    bank.run(proposed["id"])
    done = bank.wait(proposed["id"], timeout=300)
    assert done["status"] == "succeeded", done["failure_reason"]
    model = _bytes(bank, done, "model")
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        config = json.loads(archive.read("config.json"))
    assert config["class_names"] == sorted(set(frame["region"]))


def test_a_kept_datasets_record_or_blob_swapped_afterwards_is_refused(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    """After carol kept an output, the operator points her kept dataset at another ciphertext of
    hers: with its hash, her review refuses; keeping the signed hash, the enclave refuses."""
    alice, carol = member("alice"), member("carol")
    task = _echo(alice, b"id\nkept-row\n", {"data": {"recipients": ["carol"]}}, [alice, carol])
    kept = carol.keep_output(task, "data", kind="table")
    other = carol.upload_dataset(b"id\nother-row\n", name="other", kind="table")

    def echo_kept() -> str:
        proposed = carol.propose(
            "echo",
            inputs={"data": kept["id"]},
            outputs={"data": {"recipients": ["carol"]}},
            arguments={},
            disclosure={"progress": [], "errors": ["carol"]},
        )
        task_id: str = proposed["id"]
        return task_id

    with operator_db(platform) as db:
        db.execute(
            "UPDATE datasets SET blob_key = ?, ciphertext_sha256 = ? WHERE dataset_id = ?",
            (f"datasets/{other['id']}", other["ciphertext_sha256"], kept["id"]),
        )
    with pytest.raises(ClientError, match="differs from what you uploaded"):
        carol.approve(echo_kept())

    with operator_db(platform) as db:  # the signed hash back, the other bytes kept
        db.execute(
            "UPDATE datasets SET ciphertext_sha256 = ? WHERE dataset_id = ?",
            (kept["ciphertext_sha256"], kept["id"]),
        )
    swapped = echo_kept()
    carol.approve(swapped)
    carol.run(swapped)
    done = carol.wait(swapped, timeout=120)
    assert done["status"] == "failed" and "hash" in str(done["failure_reason"])
