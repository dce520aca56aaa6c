"""Models a member can take home, over real HTTP with real executor processes (issue 12, item 4).

A bank and a credit bureau train on their joined table; the model goes to the bank alone. The
bureau's review warns it that the bank's model file carries statistics of its columns. The bank
keeps the model as its own dataset without uploading it again (``teeflow dataset from-output``),
scores with it in later tasks, sees the task's outputs and the datasets they became (``teeflow
task outputs``), and exports it (``teeflow model export``) to PaddlePaddle's inference format,
which predicts what teeflow predicts. A joint output stays sealed: fetching it says how to use it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client import ApiError, Client, ClientError, Keyring, MemberHome
from teeflow.functions.dl.tables import split_rows
from teeflow.server.launcher import LocalPlatform

from .conftest import PASSWORD, MemberFactory, member_policy, operator_db
from .test_dl_correct import BANK, BUREAU, _bytes, _csv, _run, _table


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"TEEFLOW_HOME": str(home), "COLUMNS": "300"})


def cli_json(home: Path, *args: str) -> Any:
    result = cli(home, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def bank_at_home(platform: LocalPlatform, tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """The bank, with a home the ``teeflow`` command uses (keyring, credentials, policy)."""
    home = tmp_path / "home-bank"
    keyring = Keyring(home)
    keyring.init(None)
    client = Client(platform.url, keys=keyring.load(None), home=MemberHome(home))
    client.register("bank", PASSWORD)
    client.login("bank", PASSWORD)
    client.home.save_policy(member_policy(platform).to_dict())
    yield client, home
    client.close()


def _predictor_output(directory: Path, features: np.ndarray) -> np.ndarray:
    import paddle.inference

    graph = directory / "model.json"
    if not graph.exists():  # Paddle before PIR writes the program as model.pdmodel
        graph = directory / "model.pdmodel"
    config = paddle.inference.Config(str(graph), str(directory / "model.pdiparams"))
    config.disable_gpu()
    predictor = paddle.inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(features.shape))
    handle.copy_from_cpu(features)
    predictor.run()
    result: np.ndarray = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    return result


def test_the_bank_keeps_its_model_scores_with_it_and_exports_it(
    bank_at_home: tuple[Client, Path], member: MemberFactory, tmp_path: Path
) -> None:
    bank, home = bank_at_home
    bureau = member("bureau")
    frame = _table(seed=5)
    bank_ds = bank.upload_dataset(_csv(frame[BANK]), name="bank", kind="table")
    bureau_ds = bureau.upload_dataset(_csv(frame[BUREAU]), name="bureau", kind="table")
    both = {"bank": bank_ds["id"], "bureau": bureau_ds["id"]}
    proposed = bank.propose(
        "tabular-train",
        inputs=both,
        outputs={
            "model": {"recipients": ["bank"]},
            "metrics": {"recipients": ["bank"]},
            "metrics_public": {"joint_owners": ["bank", "bureau"]},
        },
        arguments={
            "label_column": "label",
            "id_column": "id",
            "model": "mlp",
            "epochs": 10,
            "learning_rate": 0.05,
            "seed": 0,
        },
        disclosure={"progress": [], "errors": ["bank"]},
    )

    # The bureau's review names the bank and the bureau's columns the model file carries.
    warnings = bureau.review(bureau.task(proposed["id"]))
    assert (
        "the model file delivered to bank (output 'model') carries means and standard "
        "deviations of your columns alpha; the category values of your columns region"
    ) in warnings
    assert not [w for w in bank.review(bank.task(proposed["id"])) if "model file" in w]
    for client in (bank, bureau):
        client.approve(proposed["id"])
    bank.run(proposed["id"])
    train = bank.wait(proposed["id"], timeout=300)
    assert train["status"] == "succeeded", train["failure_reason"]
    metrics = json.loads(_bytes(bank, train, "metrics"))

    # Kept without re-upload: the dataset's ciphertext is the one the enclave signed for.
    kept = cli_json(home, "dataset", "from-output", train["id"], "model", "--name", "credit")
    signed = bank.receipt(train["id"])["body"]["outputs"]["model"]["ciphertext_sha256"]
    assert (kept["resealed"], kept["kind"], kept["owner"]) == (False, "model", "bank")
    assert kept["ciphertext_sha256"] == signed and kept["produced_by_task"] == train["id"]
    again = cli_json(home, "dataset", "from-output", train["id"], "model")
    assert again["id"] == kept["id"]

    outputs = {row["slot"]: row for row in cli_json(home, "task", "outputs", train["id"])}
    assert outputs["model"]["dataset_id"] == kept["id"] and outputs["model"]["kind"] == "model"
    assert outputs["model"]["recipients"] == ["bank"] and not outputs["model"]["joint"]
    joint = outputs["metrics_public"]
    assert joint["joint"] and joint["owners"] == ["bank", "bureau"]
    shown = cli(home, "dataset", "show", joint["dataset_id"])
    listed = cli(home, "dataset", "list")
    assert "bank, bureau" in shown.stdout and "bank, bureau" in listed.stdout
    with pytest.raises(ApiError, match="stays sealed to the enclave") as refused:
        bank.output(train["id"], "metrics_public")
    assert refused.value.status == 403 and "all its owners approve" in str(refused.value)
    fetched = cli(
        home, "task", "output", train["id"], "metrics_public", "--out", str(tmp_path / "x.json")
    )
    assert fetched.exit_code != 0 and "stays sealed to the enclave" in fetched.stderr

    # The kept model scores the training split as training did, in a later task.
    train_rows, _ = split_rows(frame["label"].to_numpy(), test_fraction=0.2, seed=0)
    part = frame.iloc[train_rows]
    part_ds = bank.upload_dataset(_csv(part[BANK]), name="bank-train", kind="table")
    evaluated = _run(
        bank,
        "evaluate",
        inputs={"model": kept["id"], "bank": part_ds["id"], "bureau": bureau_ds["id"]},
        outputs={"metrics": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
    )
    result = json.loads(_bytes(bank, evaluated, "metrics"))
    assert {k: result[k] for k in metrics["train"]} == metrics["train"]
    predicted = _run(
        bank,
        "tabular-predict",
        inputs={"model": kept["id"], "bank": part_ds["id"], "bureau": bureau_ds["id"]},
        outputs={"predictions": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
    )
    scored = pd.read_csv(io.BytesIO(_bytes(bank, predicted, "predictions")))

    # Exported on the bank's machine: raw features in, teeflow's probabilities out.
    model_file = tmp_path / "model.zip"
    assert (
        cli(home, "task", "output", train["id"], "model", "--out", str(model_file)).exit_code == 0
    )
    exported = cli_json(home, "model", "export", str(model_file), "--out", str(tmp_path / "x"))
    assert exported["format"] == "paddle-inference" and exported["preprocessing_in_graph"]
    described = json.loads((tmp_path / "x" / "features.json").read_text())
    rows = frame.set_index("id").loc[scored["id"]]
    raw = np.stack(
        [
            rows[item["column"]].to_numpy(dtype=np.float64)
            if item["type"] == "number"
            else rows[item["column"]].map(item["categories"].index).to_numpy(dtype=np.float64)
            for item in described["inputs"]
        ],
        axis=1,
    )
    probabilities = _predictor_output(tmp_path / "x", raw)[:, 0]
    # tabular-predict writes probabilities rounded to 6 digits
    np.testing.assert_allclose(probabilities, scored["probability"], rtol=0, atol=1e-6)


def _echo(creator: Client, data: bytes, outputs: dict[str, Any], approvers: list[Client]) -> str:
    dataset = creator.upload_dataset(data, name="rows.csv", kind="table")
    return _run(
        creator,
        "echo",
        inputs={"data": dataset["id"]},
        outputs=outputs,
        approvers=approvers,
    )["id"]


def test_only_a_recipient_keeps_an_output_and_a_padded_one_is_resealed(
    member: MemberFactory,
) -> None:
    alice, carol = member("alice"), member("carol")
    rows = b"id,amount\na1,7\n"
    task = _echo(alice, rows, {"data": {"recipients": ["carol"], "pad": 4096}}, [alice, carol])

    with pytest.raises(ClientError, match="not addressed to you"):
        alice.keep_output(task, "data")
    refused = alice.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "mine"})
    assert refused.status_code == 403 and "not a recipient" in refused.text
    padded = carol.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "mine"})
    assert padded.status_code == 409 and "padded" in padded.text
    kept = carol.keep_output(task, "data", kind="table")

    assert kept["resealed"] and kept["owner"] == "carol"
    reused = _run(
        carol,
        "echo",
        inputs={"data": kept["id"]},
        outputs={"data": {"recipients": ["carol"]}},
        approvers=[carol],
    )
    assert carol.output(reused["id"], "data") == rows


def test_a_joint_output_cannot_be_kept_or_fetched_by_any_owner(member: MemberFactory) -> None:
    alice, carol = member("alice"), member("carol")
    task = _echo(alice, b"id\n1\n", {"data": {"joint_owners": ["alice", "carol"]}}, [alice, carol])

    for client in (alice, carol):
        with pytest.raises(ClientError, match="stays sealed to the enclave"):
            client.keep_output(task, "data")
        direct = client.http.post(f"/v1/tasks/{task}/outputs/data/dataset", json={"name": "m"})
        content = client.http.get(f"/v1/tasks/{task}/outputs/data/content")
        for response in (direct, content):
            assert response.status_code == 403
            assert "jointly owned by alice, carol" in response.text
            assert "all its owners approve" in response.text


def test_an_operator_who_swaps_the_outputs_ciphertext_gets_no_key_kept(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    alice, carol = member("alice"), member("carol")
    task = _echo(alice, b"id\n1\n", {"data": {"recipients": ["carol"]}}, [alice, carol])
    other = carol.upload_dataset(b"other rows\n", name="other", kind="other")
    with operator_db(platform) as db:  # the output now names another blob, with its hash
        db.execute(
            "UPDATE outputs SET blob_key = ?, ciphertext_sha256 = ? WHERE task_id = ?",
            (f"datasets/{other['id']}", other["ciphertext_sha256"], task),
        )
    keys_before = sorted((carol.home.root / "datasets").iterdir())

    with pytest.raises(ClientError, match="not the ciphertext the enclave signed for"):
        carol.keep_output(task, "data", kind="table")

    assert sorted((carol.home.root / "datasets").iterdir()) == keys_before
