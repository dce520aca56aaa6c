"""Evaluation metrics, as JSON-ready aggregates that never carry a row's values.

Binary (credit risk, screening): AUC, KS (max distance between the score distributions of the two
classes, i.e. max(TPR - FPR)), accuracy at a threshold, confusion matrix, and the ROC curve at
most ``ROC_POINTS`` points (FPR, TPR and the score threshold of each, from which the KS curve is
drawn too). Multiclass (images):
accuracy, confusion matrix, per-class recall, one-vs-rest macro AUC over the classes that occur.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

__all__ = [
    "ROC_POINTS",
    "binary_metrics",
    "class_probabilities",
    "multiclass_metrics",
    "roc_points",
    "sigmoid",
    "softmax",
    "table_metrics",
]

_DIGITS = 6
ROC_POINTS = 51
"""Most points of the ROC curve kept in a metrics output (aggregates, not rows)."""


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, without clipping the logits (overflow gives exactly 0).

    Clipping (it was at +-60) made every logit below -60 the same probability, so well-separated
    rows tied and the AUC and KS of a confident model came out wrong (issue 16: 0.97791 against
    the plain script's 0.97769 for the same weights).
    """
    with np.errstate(over="ignore"):  # exp(-z) overflows to inf below z = -709: 1 / inf = 0
        result: np.ndarray = 1.0 / (1.0 + np.exp(-logits))
    return result


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return result


def _auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y_true)) < 2:
        return None  # undefined with one class present
    return round(float(roc_auc_score(y_true, score)), _DIGITS)


def roc_points(
    y_true: np.ndarray, score: np.ndarray, *, limit: int = ROC_POINTS
) -> dict[str, list[float]] | None:
    """The ROC curve as ``{"fpr": [...], "tpr": [...], "threshold": [...]}``, at most ``limit``
    points (evenly chosen among sklearn's, first and last kept), thresholds clipped to [0, 1];
    None with one class present."""
    if len(np.unique(y_true)) < 2:
        return None
    fpr, tpr, thresholds = roc_curve(y_true, score)
    if len(fpr) > limit:
        keep = np.unique(np.linspace(0, len(fpr) - 1, limit).round().astype(np.int64))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return {
        "fpr": [round(float(v), 4) for v in fpr],
        "tpr": [round(float(v), 4) for v in tpr],
        "threshold": [round(float(v), 4) for v in np.clip(thresholds, 0.0, 1.0)],
    }


def binary_metrics(
    y_true: np.ndarray, probability: np.ndarray, *, threshold: float = 0.5
) -> dict[str, Any]:
    """AUC, KS, accuracy, confusion matrix ``[[tn, fp], [fn, tp]]`` and ROC points (see
    :func:`roc_points`; None with one class) for 0/1 labels."""
    y_true = np.asarray(y_true).astype(np.int64)
    predicted = (probability >= threshold).astype(np.int64)
    ks: float | None = None
    if len(np.unique(y_true)) == 2:
        fpr, tpr, _ = roc_curve(y_true, probability)
        ks = round(float(np.max(tpr - fpr)), _DIGITS)
    matrix = confusion_matrix(y_true, predicted, labels=[0, 1])
    return {
        "auc": _auc(y_true, probability),
        "ks": ks,
        "accuracy": round(float((predicted == y_true).mean()) if len(y_true) else 0.0, _DIGITS),
        "confusion_matrix": matrix.astype(int).tolist(),
        "threshold": threshold,
        "n": len(y_true),
        "roc": roc_points(y_true, probability),
    }


def multiclass_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, *, class_names: list[str]
) -> dict[str, Any]:
    y_true = np.asarray(y_true).astype(np.int64)
    k = len(class_names)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, predicted, labels=list(range(k)))
    support = matrix.sum(axis=1)
    recall = {
        class_names[i]: (round(float(matrix[i, i] / support[i]), _DIGITS) if support[i] else None)
        for i in range(k)
    }
    if k == 2:
        auc = _auc(y_true, probabilities[:, 1])
    else:
        per_class = [
            _auc((y_true == i).astype(np.int64), probabilities[:, i])
            for i in range(k)
            if 0 < support[i] < len(y_true)
        ]
        scored = [value for value in per_class if value is not None]
        auc = round(float(np.mean(scored)), _DIGITS) if scored else None
    return {
        "accuracy": round(float((predicted == y_true).mean()) if len(y_true) else 0.0, _DIGITS),
        "auc": auc,
        "auc_kind": "binary" if k == 2 else "one-vs-rest macro",
        "confusion_matrix": matrix.astype(int).tolist(),
        "per_class_recall": recall,
        "class_names": class_names,
        "n": len(y_true),
    }


def class_probabilities(logits: np.ndarray, *, multiclass: bool) -> np.ndarray:
    """(rows, classes) probabilities from a tabular network's logits: softmax of one logit per
    class, or ``[1 - p, p]`` with ``p`` the sigmoid of a 0/1 model's one logit."""
    if multiclass:
        return softmax(logits)
    positive = sigmoid(logits[:, 0])
    return np.column_stack([1.0 - positive, positive])


def table_metrics(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    *,
    threshold: float,
    class_names: list[str] | None,
) -> dict[str, Any]:
    """A tabular model's metrics from (rows, classes) ``probabilities``: :func:`binary_metrics`
    of the last column when ``class_names`` is ``None`` (a 0/1 model), else
    :func:`multiclass_metrics` (per-class recall, confusion matrix, one-vs-rest macro AUC)."""
    if class_names is None:
        return binary_metrics(y_true, probabilities[:, -1], threshold=threshold)
    return multiclass_metrics(y_true, probabilities, class_names=class_names)
