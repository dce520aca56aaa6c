"""Multi-class labels for the tabular built-ins: train, predict, evaluate and serve."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import FunctionError
from teeflow.functions.builtins.tabular_serve import TabularPredictor
from teeflow.functions.dl.scoring import TabularModel
from teeflow.functions.dl.tables import split_rows

ARGS = {"label_column": "risk", "id_column": "id", "epochs": 15, "learning_rate": 0.05, "seed": 0}
CLASSES = ["high", "low", "medium"]


def three_classes(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """``risk`` is low / medium / high by ``zeta - alpha``; columns out of alphabetical order."""
    rng = np.random.RandomState(seed)
    zeta, alpha = rng.normal(size=n), rng.normal(size=n)
    score = zeta - alpha + rng.normal(scale=0.3, size=n)
    risk = np.where(score < -0.6, "low", np.where(score < 0.6, "medium", "high"))
    return pd.DataFrame({"id": np.arange(n), "zeta": zeta * 100, "risk": risk, "alpha": alpha - 7})


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_three_classes_train_predict_evaluate_and_serve(tmp_path: Path, model: str) -> None:
    frame = three_classes()
    train = run_builtin(
        "tabular-train",
        {"t": _csv(frame)},
        {**ARGS, "model": model},
        ("model", "metrics", "metrics_public"),
        tmp_path,
    )
    splits = split_rows(
        frame["risk"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(),
        test_fraction=0.2,
        seed=0,
    )

    metrics = train.json("metrics")
    test = metrics["test"]
    assert test["class_names"] == CLASSES and test["auc_kind"] == "one-vs-rest macro"
    assert set(test["per_class_recall"]) == set(CLASSES)
    assert np.array(test["confusion_matrix"]).shape == (3, 3)
    assert test["auc"] > 0.85 and test["accuracy"] > 0.6
    assert train.json("metrics_public") == {"auc": metrics["auc"], "accuracy": metrics["accuracy"]}
    for name, rows in zip(("train", "test"), splits, strict=True):
        evaluated = run_builtin(
            "evaluate",
            {"model": train.outputs["model"], "t": _csv(frame.iloc[rows])},
            {},
            ("metrics",),
            tmp_path,
        ).json("metrics")
        assert {k: evaluated[k] for k in metrics[name]} == metrics[name], name

    predicted = run_builtin(
        "tabular-predict",
        {"model": train.outputs["model"], "t": _csv(frame.drop(columns=["risk"]))},
        {},
        ("predictions",),
        tmp_path,
    )
    table = pd.read_csv(io.BytesIO(predicted.outputs["predictions"]))
    assert list(table.columns) == ["id", "predicted", "p_high", "p_low", "p_medium"]
    assert set(table["predicted"]) <= set(CLASSES)
    np.testing.assert_allclose(table[["p_high", "p_low", "p_medium"]].sum(axis=1), 1.0, atol=1e-5)
    accuracy = (table["predicted"].to_numpy() == frame["risk"].to_numpy()).mean()
    assert accuracy > 0.6

    predictor = TabularPredictor(TabularModel.from_bytes(train.outputs["model"]), threshold=0.5)
    rows = frame.drop(columns=["risk"]).head(5).to_dict("records")
    served = predictor.predict(json.dumps({"rows": rows}).encode(), max_rows=100)["predictions"]
    assert [row["predicted"] for row in served] == table["predicted"].head(5).tolist()
    assert [row["p_low"] for row in served] == table["p_low"].head(5).tolist()


def test_evaluate_refuses_a_class_the_model_never_saw(tmp_path: Path) -> None:
    frame = three_classes()
    model = run_builtin("tabular-train", {"t": _csv(frame)}, ARGS, ("model",), tmp_path).outputs[
        "model"
    ]
    other = frame.head(10).assign(risk="extreme")

    with pytest.raises(FunctionError, match="10 row\\(s\\) of label column 'risk' hold a class"):
        run_builtin("evaluate", {"model": model, "t": _csv(other)}, {}, ("metrics",), tmp_path)


def test_a_continuous_label_is_refused(tmp_path: Path) -> None:
    frame = three_classes().assign(risk=lambda f: f["zeta"] * 1.5)

    with pytest.raises(FunctionError, match="is not 0/1 and has 300 distinct values"):
        run_builtin("tabular-train", {"t": _csv(frame)}, ARGS, ("metrics",), tmp_path)
