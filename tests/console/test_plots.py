"""Pictures from metrics documents: what each built-in writes, and what malformed data does."""

from __future__ import annotations

import numpy as np

from teeflow.console.plots import metric_pictures, metric_summary, training_picture
from teeflow.console.report import report_html
from teeflow.functions.dl.metrics import ROC_POINTS, binary_metrics, multiclass_metrics


def _binary() -> dict:
    rng = np.random.RandomState(0)
    y = rng.randint(0, 2, 400)
    score = np.clip(y * 0.3 + rng.uniform(0, 0.7, 400), 0, 1)
    return binary_metrics(y, score)


def test_binary_metrics_carry_a_bounded_roc_curve() -> None:
    metrics = _binary()

    roc = metrics["roc"]
    assert 2 < len(roc["fpr"]) <= ROC_POINTS
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["threshold"])
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert all(0.0 <= t <= 1.0 for t in roc["threshold"])
    gaps = [t - f for t, f in zip(roc["tpr"], roc["fpr"], strict=True)]
    assert abs(max(gaps) - metrics["ks"]) < 0.05  # the KS curve's gap is the reported KS
    assert binary_metrics(np.zeros(5), np.full(5, 0.5))["roc"] is None


def test_tabular_train_metrics_give_roc_ks_confusion_and_training() -> None:
    document = {
        "auc": 0.8,
        "test": _binary(),
        "epochs": [{"epoch": 1, "loss": 0.7}, {"epoch": 2, "loss": 0.6}],
    }

    pictures = metric_pictures(document)

    assert [p.key for p in pictures] == ["roc", "ks", "confusion", "training"]
    assert all(p.data.lstrip().startswith(b"<?xml") and b"<svg" in p.data for p in pictures)
    assert metric_summary(document)["auc"] == 0.8


def test_image_metrics_give_confusion_and_recall() -> None:
    probabilities = np.eye(3)[[0, 1, 2, 1, 0]]
    metrics = multiclass_metrics(
        np.array([0, 1, 2, 2, 0]), probabilities, class_names=["a", "b", "c"]
    )

    keys = [p.key for p in metric_pictures(metrics, fmt="png")]

    assert keys == ["confusion", "recall"]
    assert metric_pictures(metrics, fmt="png")[0].data.startswith(b"\x89PNG")


def test_feature_importance_is_drawn_where_a_function_writes_it() -> None:
    as_mapping = {"feature_importance": {"income": 0.7, "debt": -0.2}}
    as_gbdt_list = {
        "feature_importance": [
            {"column": "income", "gain_share": 0.8},
            {"column": "debt", "gain_share": 0.2},
        ]
    }

    assert [p.key for p in metric_pictures(as_mapping)] == ["importance"]
    assert [p.key for p in metric_pictures(as_gbdt_list)] == ["importance"]


def test_malformed_metrics_give_no_picture_and_no_error() -> None:
    hostile = {
        "roc": {"fpr": [0, 1], "tpr": [0], "threshold": [1, 0]},
        "confusion_matrix": [[1, 2], [3]],
        "per_class_recall": {"a": "x", "b": None},
        "feature_importance": {"f": float("nan")},
        "epochs": [{"epoch": True, "loss": 1}, "nonsense"],
    }

    assert metric_pictures(hostile) == []
    assert training_picture([{"kind": "progress", "loss": 0.5}]) is None


def test_report_escapes_every_string_from_the_task() -> None:
    task = {
        "id": "<img src=x>",
        "status": "succeeded",
        "contract_hash": "h",
        "contract": {"function": {"name": "<script>alert(1)</script>"}, "executor": {"tee": "sim"}},
    }

    page = report_html(
        task, {"<b>slot</b>": _binary()}, [{"kind": "progress", "epoch": 1, "loss": 0.4}]
    )

    assert "<script>alert" not in page and "<img src=x>" not in page and "<b>slot</b>" not in page
    assert "SIMULATED" in page and "ROC curve" in page and "Training curves" in page
