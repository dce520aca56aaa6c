"""Gradient-boosted trees (``tabular-train`` with ``model: gbdt``, on LightGBM): deterministic for a
seed, feature importance in the metrics, and predict / evaluate / serve with the saved trees."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin
from test_dl_multiclass import three_classes
from test_dl_roundtrip import unordered_table

from teeflow.functions.api import FunctionError
from teeflow.functions.builtins.tabular_serve import TabularPredictor
from teeflow.functions.datasets import german_credit_parties
from teeflow.functions.dl.scoring import TabularModel

ARGS = {"label_column": "label", "id_column": "id", "model": "gbdt", "num_trees": 40, "seed": 0}


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def test_gbdt_is_deterministic_and_reports_feature_importance(tmp_path: Path) -> None:
    data = _csv(unordered_table())

    first = run_builtin("tabular-train", {"t": data}, ARGS, ("model", "metrics"), tmp_path)
    again = run_builtin("tabular-train", {"t": data}, ARGS, ("model", "metrics"), tmp_path)

    assert first.outputs == again.outputs
    metrics = first.json("metrics")
    ranked = [item["column"] for item in metrics["feature_importance"]]
    assert set(ranked) == {"zeta", "mid", "colour", "alpha"}
    assert set(ranked[:2]) == {"zeta", "alpha"}  # the two columns the label depends on
    assert sum(item["gain_share"] for item in metrics["feature_importance"]) == pytest.approx(1)
    assert metrics["trees"] == 40 and metrics["test"]["auc"] > 0.85
    assert first.progress[-1] == {"trees": 40, "of": 40}
    with zipfile.ZipFile(io.BytesIO(first.outputs["model"])) as archive:
        assert archive.read("booster.txt").startswith(b"tree\n")


def test_gbdt_multi_class_predict_and_serve(tmp_path: Path) -> None:
    frame = three_classes()
    args = {**ARGS, "label_column": "risk"}
    train = run_builtin("tabular-train", {"t": _csv(frame)}, args, ("model", "metrics"), tmp_path)
    features = frame.drop(columns=["risk"])

    predicted = run_builtin(
        "tabular-predict",
        {"model": train.outputs["model"], "t": _csv(features)},
        {},
        ("predictions",),
        tmp_path,
    )
    session = TabularPredictor(TabularModel.from_bytes(train.outputs["model"]), threshold=0.5)
    served = session.predict(
        json.dumps({"rows": features.head(6).to_dict("records")}).encode(), max_rows=100
    )

    table = pd.read_csv(io.BytesIO(predicted.outputs["predictions"]))
    assert train.json("metrics")["test"]["auc"] > 0.85
    assert (table["predicted"] == frame["risk"]).mean() > 0.8
    assert [row["predicted"] for row in served["predictions"]] == table["predicted"][:6].tolist()
    assert [row["p_low"] for row in served["predictions"]] == table["p_low"][:6].tolist()


def test_gbdt_on_the_credit_join_scores_like_the_training(tmp_path: Path) -> None:
    data = german_credit_parties()
    inputs = {"bank": data["bank.csv"], "bureau": data["bureau.csv"]}
    args = {**ARGS, "label_column": "default", "id_column": "applicant_id", "num_trees": 60}

    train = run_builtin("tabular-train", inputs, args, ("model", "metrics"), tmp_path)
    evaluated = run_builtin(
        "evaluate", {"model": train.outputs["model"], **inputs}, {}, ("metrics",), tmp_path
    )

    metrics = train.json("metrics")
    assert 0.65 < metrics["auc"] <= 1.0
    columns = {item["column"] for item in metrics["feature_importance"]}
    assert "credit_history" in columns and "credit_amount" in columns
    # evaluate scores every joined row: the train and test rows, with the trees as saved
    n_train, n_test = metrics["n_train"], metrics["n_test"]
    assert evaluated.json("metrics")["n"] == n_train + n_test
    blended = (metrics["train"]["accuracy"] * n_train + metrics["test"]["accuracy"] * n_test) / (
        n_train + n_test
    )
    assert evaluated.json("metrics")["accuracy"] == pytest.approx(blended, abs=1e-6)


def test_trees_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    model = run_builtin("tabular-train", {"t": _csv(unordered_table())}, ARGS, ("model",), tmp_path)
    with zipfile.ZipFile(io.BytesIO(model.outputs["model"])) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["class_names"] = ["a", "b", "c"]
    members["config.json"] = json.dumps(config).encode()
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    with pytest.raises(FunctionError, match="do not match its declared features and classes"):
        TabularModel.from_bytes(broken.getvalue())
    assert np.isfinite(
        TabularModel.from_bytes(model.outputs["model"]).probabilities(
            np.zeros((1, 6), dtype=np.float32)
        )
    ).all()
