"""Mistakes caught before the approval round (issue 12 item 3), on a real platform.

A mistyped argument is refused by the proposer's client before anything is sent, and again by
the enclave when a proposer bypasses its client; a member's client refuses to approve a task its
own table cannot serve; a broken CSV is refused before it is sealed; a published schema reaches
partners signed, and one the operator altered is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from teeflow.cli.main import app
from teeflow.client import Client, ClientError
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, operator_db

TABLE = b"patient_id,age,outcome\n1,54,0\n2,61,1\n3,47,0\n4,70,1\n5,39,0\n6,58,1\n"
NO_LABEL = b"patient_id,age,bmi\n1,54,22.1\n2,61,27.3\n3,47,24.0\n"


def _my_tasks(client: Client) -> list[str]:
    return [task["id"] for task in client.tasks(role="creator")]


def _echo(proposer: Client, dataset_id: str) -> str:
    outputs = {"scores": {"recipients": [proposer.username or ""]}}
    task = proposer.propose("echo", inputs={"scores": dataset_id}, outputs=outputs)
    return str(task["id"])


def test_a_mistyped_argument_is_refused_before_anything_is_sent(member: MemberFactory) -> None:
    alice = member("alice")
    table = alice.upload_dataset(TABLE, name="ward.csv", kind="table")
    before = _my_tasks(alice)

    with pytest.raises(ClientError) as refused:
        alice.propose(
            "tabular-train",
            inputs={"ward": table["id"]},
            outputs={"model": {"recipients": ["alice"]}},
            arguments={"label_column": "outcome", "epoch": 3, "model": "svm"},
        )

    message = str(refused.value)
    assert "unknown argument `epoch`; did you mean `epochs`?" in message
    assert "argument `model` must be one of logistic, mlp, gbdt, got 'svm'" in message
    assert "Accepted arguments: label_column (str, required)" in message
    assert "epochs (int 1..10000, default 20)" in message
    assert _my_tasks(alice) == before


def test_a_contract_with_a_bad_argument_is_refused_by_the_enclave(member: MemberFactory) -> None:
    alice = member("alice")
    table = alice.upload_dataset(TABLE, name="ward.csv", kind="table")
    body = {  # what a proposer that skips its client's check sends
        "function": "tabular-train",
        "inputs": {"ward": table["id"]},
        "outputs": {"model": {"recipients": ["alice"]}},
        "arguments": {"label_column": "outcome", "epochs": "five"},
    }
    task = alice.http.post("/v1/tasks", json=body).json()

    alice.approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)

    assert done["status"] == "failed"
    assert "argument `epochs` must be int 1..10000, got 'five'" in done["failure_reason"]
    assert alice.outputs(task["id"]) == []


def test_approval_is_refused_locally_when_my_table_lacks_the_label(
    member: MemberFactory,
) -> None:
    alice, clinic = member("alice"), member("clinic")
    mine = clinic.upload_dataset(NO_LABEL, name="clinic.csv", kind="table")
    task = alice.propose(
        "tabular-train",
        inputs={"clinic": mine["id"]},
        outputs={"model": {"recipients": ["alice"]}},
        arguments={"label_column": "outcome"},
    )

    with pytest.raises(ClientError) as refused:
        clinic.approve(task["id"])

    message = str(refused.value)
    assert "your dataset 'clinic.csv' (input 'clinic') has no column 'outcome'" in message
    assert "the label column (the argument `label_column`)" in message
    assert "its columns are patient_id, age, bmi" in message
    shown = clinic.task(task["id"])
    assert shown["status"] == "proposed" and not shown.get("approvals")
    # nothing lost: the member fixes its table, the proposer proposes again, approval goes on
    fixed = clinic.upload_dataset(TABLE, name="clinic.csv", kind="table")
    again = alice.propose(
        "tabular-train",
        inputs={"clinic": fixed["id"]},
        outputs={"model": {"recipients": ["alice"]}},
        arguments={"label_column": "outcome"},
    )
    assert clinic.approve(again["id"])["id"] == again["id"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (TABLE[:-9], "looks truncated: its last line (line 6) has 2 of 3 fields"),
        (b"id,income\n1,inf\n2,3\n", "column 'income' holds a non-finite or overflowing number"),
        (b"id,name\n1,M\xfcller\n", "is not UTF-8 text (byte 0xfc on line 2)"),
        (b"id,a,b\n1,2\n3,4,5,6\n", "is not a readable CSV table"),
    ],
)
def test_a_broken_csv_is_refused_before_it_is_sealed(
    member: MemberFactory, tmp_path: Path, content: bytes, expected: str
) -> None:
    alice = member("alice")
    path = tmp_path / "ward.csv"
    path.write_bytes(content)
    before = [d["id"] for d in alice.datasets()]

    with pytest.raises(ClientError) as refused:
        alice.upload_dataset(path, name="ward.csv")

    assert expected in str(refused.value)
    assert str(refused.value).startswith("ward.csv")
    assert [d["id"] for d in alice.datasets()] == before


def test_a_published_schema_reaches_partners_signed_and_an_altered_one_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    bureau, bank = member("bureau"), member("bank")
    dataset = bureau.upload_dataset(TABLE, name="bureau.csv", kind="table")
    assert bank.dataset(dataset["id"])["schema"] is None  # nothing is published by default

    published = bureau.publish_schema(dataset["id"])
    seen = bank.dataset(dataset["id"])["schema"]
    review = bank.review(bank.task(_echo(bank, dataset["id"])))

    assert seen == published
    assert (
        "input 'scores' of 'bureau': published schema (signed by its owner): csv, 6 rows; "
        "patient_id:integer, age:integer, outcome:integer"
    ) in review
    assert seen["rows"] == 6
    assert [c["name"] for c in seen["columns"]] == ["patient_id", "age", "outcome"]
    with operator_db(platform) as db:
        (meta,) = db.execute(
            "SELECT meta FROM datasets WHERE dataset_id = ?", (dataset["id"],)
        ).fetchone()
        altered = json.loads(meta)
        altered["schema"]["schema"]["summary"]["rows"] = 60000
        db.execute(
            "UPDATE datasets SET meta = ? WHERE dataset_id = ?",
            (json.dumps(altered), dataset["id"]),
        )
    with pytest.raises(ClientError) as refused:
        bank.dataset(dataset["id"])
    with pytest.raises(ClientError) as in_review:
        bank.review(bank.task(_echo(bank, dataset["id"])))
    assert "the control plane altered it" in str(refused.value)
    assert "the control plane altered it" in str(in_review.value)


def _cli(home: Path, *args: str) -> Result:
    env = {"TEEFLOW_HOME": str(home), "TEEFLOW_TEST_PASSWORD": "pw-cli-clinic-123"}
    return CliRunner().invoke(app, list(args), env=env)


def test_the_cli_refuses_a_broken_file_and_a_mistyped_argument_and_publishes_a_schema(
    platform: LocalPlatform, member: MemberFactory, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    for args in (
        ("keys", "init"),
        ("account", "register", "--server", platform.url, "cli-clinic", "--password-env",
         "TEEFLOW_TEST_PASSWORD"),
        ("attest", "trust", "--simulated", "--data-dir", str(platform.data_dir)),
    ):  # fmt: skip
        assert _cli(home, *args).exit_code == 0, args
    broken, table = tmp_path / "broken.csv", tmp_path / "ward.csv"
    broken.write_bytes(TABLE[:-10])
    table.write_bytes(TABLE)

    refused = _cli(home, "dataset", "upload", str(broken), "--name", "broken.csv")
    uploaded = _cli(home, "dataset", "upload", str(table), "--name", "ward.csv", "--json")
    dataset_id = json.loads(uploaded.stdout)["id"]
    mistyped = _cli(
        home, "task", "propose", "tabular-train", "--input", f"ward={dataset_id}",
        "--output", "model=cli-clinic", "--arg", "label_column=outcome", "--arg", "epoch=3",
    )  # fmt: skip
    published = _cli(home, "dataset", "schema", dataset_id, "--publish")

    assert refused.exit_code == 1
    assert "broken.csv looks truncated: its last line (line 6) has 2 of 3 fields" in refused.stderr
    assert mistyped.exit_code == 1
    assert "unknown argument `epoch`; did you mean `epochs`?" in mistyped.stderr
    assert published.exit_code == 0, published.stderr
    seen = member("bank").dataset(dataset_id)["schema"]
    assert seen["rows"] == 6 and seen["format"] == "csv"
