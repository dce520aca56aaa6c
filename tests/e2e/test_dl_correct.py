"""Deep learning that is right, over real HTTP with real executor processes (issue 12).

A bank (label + application columns) and a bureau (bureau columns) train on their joined table,
whose columns are deliberately out of alphabetical order; the bank then scores the very rows of
each split with the model it received, and the scores reproduce the training metrics exactly.
Also: id columns named differently per party and a served model joined to the bureau's held
table, multi-class labels, mixed-size scans, mismatched class folders and a zip bomb.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from teeflow.client import Client
from teeflow.functions.datasets import toy_scans
from teeflow.functions.dl.tables import split_rows

from .conftest import MemberFactory


def _table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """label rises with ``zeta`` and falls with ``alpha``; columns not in alphabetical order."""
    rng = np.random.RandomState(seed)
    zeta, alpha = rng.normal(size=n), rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * zeta - 2.5 * alpha)))).astype(int)
    return pd.DataFrame(
        {
            "id": [f"c{i:04d}" for i in range(n)],
            "zeta": zeta * 1000 + 5000,
            "label": label,
            "mid": rng.normal(size=n),
            "alpha": alpha * 3 - 40,
            "region": rng.choice(["north", "south", "east"], size=n),
        }
    )


BANK = ["id", "zeta", "label", "mid"]
BUREAU = ["id", "alpha", "region"]


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _run(
    creator: Client,
    function: str,
    *,
    inputs: Mapping[str, str],
    outputs: Mapping[str, Any],
    approvers: list[Client],
    arguments: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    task = creator.propose(
        function,
        inputs=dict(inputs),
        outputs=dict(outputs),
        arguments=dict(arguments or {}),
        disclosure={"progress": [], "errors": [creator.username]},
    )
    for client in approvers:
        client.approve(task["id"])
    creator.run(task["id"])
    done = creator.wait(task["id"], timeout=300)
    assert done["status"] == "succeeded", done["failure_reason"]
    return done


def _bytes(client: Client, task: Mapping[str, Any], slot: str) -> bytes:
    data = client.output(task["id"], slot)
    assert isinstance(data, bytes)
    return data


@pytest.mark.parametrize("model", ["logistic", "mlp", "gbdt"])
def test_scoring_the_training_splits_reproduces_the_training_metrics(
    member: MemberFactory, model: str
) -> None:
    bank, bureau = member("bank"), member("bureau")
    frame = _table()
    bank_ds = bank.upload_dataset(_csv(frame[BANK]), name="bank", kind="table")
    bureau_ds = bureau.upload_dataset(_csv(frame[BUREAU]), name="bureau", kind="table")
    train = _run(
        bank,
        "tabular-train",
        inputs={"bank": bank_ds["id"], "bureau": bureau_ds["id"]},
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
        arguments={
            "label_column": "label",
            "id_column": "id",
            "model": model,
            "epochs": 10,
            "learning_rate": 0.05,
            "seed": 0,
        },
    )
    metrics = json.loads(_bytes(bank, train, "metrics"))
    model_ds = bank.upload_dataset(_bytes(bank, train, "model"), name="model", kind="model")
    splits = dict(
        zip(
            ("train", "test"),
            split_rows(frame["label"].to_numpy(), test_fraction=0.2, seed=0),
            strict=True,
        )
    )

    for name, rows in splits.items():
        part = frame.iloc[rows]
        part_bank = bank.upload_dataset(_csv(part[BANK]), name=f"bank-{name}", kind="table")
        evaluated = _run(
            bank,
            "evaluate",
            inputs={"model": model_ds["id"], "bank": part_bank["id"], "bureau": bureau_ds["id"]},
            outputs={"metrics": {"recipients": ["bank"]}},
            approvers=[bank, bureau],
        )
        result = json.loads(_bytes(bank, evaluated, "metrics"))
        assert {k: result[k] for k in metrics[name]} == metrics[name], name

    # The bank scores its training rows itself, against labels it holds.
    unlabelled = bank.upload_dataset(
        _csv(frame.iloc[splits["train"]][BANK].drop(columns=["label"])), name="bank-x", kind="table"
    )
    predicted = _run(
        bank,
        "tabular-predict",
        inputs={"model": model_ds["id"], "bank": unlabelled["id"], "bureau": bureau_ds["id"]},
        outputs={"predictions": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
    )
    scored = pd.read_csv(io.BytesIO(_bytes(bank, predicted, "predictions")))
    labels = frame.set_index("id").loc[scored["id"], "label"]
    auc = round(float(roc_auc_score(labels, scored["probability"])), 6)
    assert auc == metrics["train"]["auc"] and auc > 0.85


def test_ids_named_differently_train_predict_and_serve_with_the_bureau_table_held(
    member: MemberFactory,
) -> None:
    bank, bureau = member("bank"), member("bureau")
    frame = _table(seed=2)
    bank_frame = frame[BANK].rename(columns={"id": "customer_no"})
    bureau_frame = frame[BUREAU].rename(columns={"id": "cust_id"})
    bank_ds = bank.upload_dataset(_csv(bank_frame), name="bank", kind="table")
    bureau_ds = bureau.upload_dataset(_csv(bureau_frame), name="bureau", kind="table")
    both = {"bank": bank_ds["id"], "bureau": bureau_ds["id"]}
    train = _run(
        bank,
        "tabular-train",
        inputs=both,
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
        arguments={
            "label_column": "label",
            "id_columns": {"bank": "customer_no", "bureau": "cust_id"},
            "epochs": 10,
            "learning_rate": 0.05,
            "seed": 0,
        },
    )
    metrics = json.loads(_bytes(bank, train, "metrics"))
    assert metrics["id_column"] == "customer_no" and metrics["n_train"] + metrics["n_test"] == 240
    model_ds = bank.upload_dataset(_bytes(bank, train, "model"), name="model", kind="model")
    predicted = _run(
        bank,
        "tabular-predict",
        inputs={"model": model_ds["id"], **both},
        outputs={"predictions": {"recipients": ["bank"]}},
        approvers=[bank, bureau],
        arguments={"id_columns": {"bureau": "cust_id"}},
    )
    batch = pd.read_csv(io.BytesIO(_bytes(bank, predicted, "predictions"))).head(12)

    session = bank.propose(
        "tabular-serve",
        inputs={"model": model_ds["id"], "bureau": bureau_ds["id"]},
        outputs={"usage": {"recipients": ["bank"]}},
        arguments={
            "requesters": ["bank"],
            "id_columns": {"bureau": "cust_id", "request": "customer_no"},
        },
    )
    for client in (bank, bureau):
        client.approve(session["id"])
    bank.run(session["id"])
    try:
        live = bank_frame.set_index("customer_no").loc[batch["customer_no"], ["zeta", "mid"]]
        answers = bank.infer(session["id"], live.reset_index().to_dict("records"), timeout=120)
    finally:
        bank.cancel(session["id"])

    assert [a["customer_no"] for a in answers] == batch["customer_no"].tolist()
    assert [a["probability"] for a in answers] == batch["probability"].tolist()


def test_multi_class_evaluate_reproduces_the_training_metrics(member: MemberFactory) -> None:
    bank = member("bank")
    frame = _table(seed=3)
    score = frame["zeta"] / 1000 - 5 - (frame["alpha"] + 40) / 3
    frame["label"] = np.where(score < -0.7, "low", np.where(score < 0.7, "medium", "high"))
    dataset = bank.upload_dataset(_csv(frame), name="graded", kind="table")
    train = _run(
        bank,
        "tabular-train",
        inputs={"t": dataset["id"]},
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        approvers=[bank],
        arguments={
            "label_column": "label",
            "id_column": "id",
            "model": "mlp",
            "epochs": 10,
            "learning_rate": 0.05,
            "seed": 0,
        },
    )
    metrics = json.loads(_bytes(bank, train, "metrics"))
    model_ds = bank.upload_dataset(_bytes(bank, train, "model"), name="graded-model", kind="model")
    target = frame["label"].map({"high": 0, "low": 1, "medium": 2}).to_numpy()
    _, test_rows = split_rows(target, test_fraction=0.2, seed=0)
    held_out = bank.upload_dataset(_csv(frame.iloc[test_rows]), name="graded-test", kind="table")

    evaluated = _run(
        bank,
        "evaluate",
        inputs={"model": model_ds["id"], "t": held_out["id"]},
        outputs={"metrics": {"recipients": ["bank"]}},
        approvers=[bank],
    )

    result = json.loads(_bytes(bank, evaluated, "metrics"))
    assert {k: result[k] for k in metrics["test"]} == metrics["test"]
    assert result["class_names"] == ["high", "low", "medium"] and result["auc"] > 0.8


def _failed_with(creator: Client, task: Mapping[str, Any], text: str) -> None:
    done = creator.wait(task["id"], timeout=300)
    errors = [e for e in creator.events(task["id"]) if e["kind"] == "error"]
    assert done["status"] == "failed"
    assert text in json.dumps(errors), errors
    assert not [e for e in creator.events(task["id"]) if "epoch" in e], "training started"


def _propose_images(creator: Client, inputs: Mapping[str, str], approvers: list[Client]) -> dict:
    task = creator.propose(
        "image-classify-train",
        inputs=dict(inputs),
        outputs={
            "model": {"recipients": [creator.username]},
            "metrics": {"recipients": [creator.username]},
        },
        arguments={"epochs": 2, "batch_size": 16, "seed": 0, "image_size": [16, 16]},
        disclosure={"progress": [creator.username], "errors": [creator.username]},
    )
    for client in approvers:
        client.approve(task["id"])
    creator.run(task["id"])
    return task


def test_mixed_size_scans_train_and_evaluate(member: MemberFactory) -> None:
    a, b = member("hospital-a"), member("hospital-b")
    ds_a = a.upload_dataset(toy_scans(sizes=(12, 20), seed=1), name="scans-a", kind="images")
    ds_b = b.upload_dataset(toy_scans(sizes=(30, 9), seed=2), name="scans-b", kind="images")
    train = _propose_images(a, {"a": ds_a["id"], "b": ds_b["id"]}, [a, b])
    done = a.wait(train["id"], timeout=300)
    assert done["status"] == "succeeded", done["failure_reason"]
    model_ds = a.upload_dataset(_bytes(a, done, "model"), name="scan-model", kind="model")
    new = a.upload_dataset(toy_scans(n=6, sizes=(25, 40), seed=3), name="new-scans", kind="images")

    evaluated = _run(
        a,
        "evaluate",
        inputs={"model": model_ds["id"], "images": new["id"]},
        outputs={"metrics": {"recipients": ["hospital-a"]}},
        approvers=[a],
    )

    metrics = json.loads(_bytes(a, evaluated, "metrics"))
    assert metrics["n"] == 12 and sum(map(sum, metrics["confusion_matrix"])) == 12
    assert set(metrics["per_class_recall"]) == {"bottom", "top"}


def test_class_folders_that_differ_between_hospitals_are_refused(member: MemberFactory) -> None:
    a, b = member("hospital-a"), member("hospital-b")
    ds_a = a.upload_dataset(toy_scans(sizes=(8,)), name="scans-a", kind="images")
    ds_b = b.upload_dataset(toy_scans(("Top", "bottom"), sizes=(8,)), name="scans-b", kind="images")

    task = _propose_images(a, {"a": ds_a["id"], "b": ds_b["id"]}, [a, b])

    _failed_with(a, task, "spelt differently")


def test_a_zip_bomb_is_refused(member: MemberFactory) -> None:
    a = member("hospital-a")
    buffer = io.BytesIO()
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("top/a.png", "w", force_zip64=True) as entry,
    ):
        for _ in range(1024):  # 1 GiB of zeros, about 1 MiB compressed
            entry.write(block)
    bomb = a.upload_dataset(buffer.getvalue(), name="bomb", kind="images")

    task = _propose_images(a, {"a": bomb["id"]}, [a])

    _failed_with(a, task, "would expand to 1024 MiB")
