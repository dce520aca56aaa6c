"""Pictures of a task's metrics and training progress, drawn on the member's machine.

Matplotlib (Agg backend, no display, no JavaScript) turns decrypted metrics into SVG text:

- ``roc`` / ``ks``: from ``roc`` points (``{"fpr", "tpr", "threshold"}``, functions/dl/metrics.py),
  at the top of a metrics document or under ``test``;
- ``confusion``: from ``confusion_matrix`` (rows: true class, columns: predicted);
- ``recall``: from ``per_class_recall`` (class -> recall or None);
- ``importance``: from ``feature_importance`` (feature -> weight, or tabular-train's GBDT list of
  ``{"column", "gain_share"}``), where a function writes one;
- ``training``: from ``epochs`` (a list of per-epoch records) or from decrypted progress events.

Every function takes plain JSON-like data and never raises on a field it does not know: a picture
whose data is missing or malformed is left out.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["Picture", "metric_pictures", "metric_summary", "render", "training_picture"]

_WIDTH, _HEIGHT = 5.2, 3.6  # inches; 100 dpi -> 520 x 360 px
_CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
# Figures are built with the object API (no pyplot state); drawing shares font caches, so one
# picture is drawn at a time.
_DRAW_LOCK = threading.Lock()


@dataclass(frozen=True)
class Picture:
    """One picture: a stable ``key`` (``roc``, ``ks`` ...), a title, and the image bytes in
    ``fmt`` (``svg``: an SVG document in UTF-8; ``png``)."""

    key: str
    title: str
    data: bytes
    fmt: str = "svg"

    @property
    def media_type(self) -> str:
        return "image/svg+xml" if self.fmt == "svg" else "image/png"


def render(figure: Figure, *, fmt: str = "svg") -> bytes:
    """``figure`` as SVG (UTF-8) or PNG bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no GUI toolkit
    with _DRAW_LOCK:
        figure.savefig(buffer, format=fmt, bbox_inches="tight", metadata=_metadata(fmt))
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    # No creation date: the same metrics give the same bytes.
    return {"Date": None} if fmt == "svg" else {}


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(_WIDTH, _HEIGHT), dpi=100)
    axes = figure.subplots()
    axes.grid(True, alpha=0.3)
    return figure, axes


def _number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, list) or not values or not all(_number(v) for v in values):
        return None
    return [float(v) for v in values]


def _section(metrics: Mapping[str, Any], key: str) -> Any:
    """``metrics[key]``, or ``metrics["test"][key]`` (tabular-train nests its test metrics)."""
    if key in metrics:
        return metrics[key]
    test = metrics.get("test")
    return test.get(key) if isinstance(test, Mapping) else None


def _roc(metrics: Mapping[str, Any]) -> tuple[list[float], list[float], list[float]] | None:
    roc = _section(metrics, "roc")
    if not isinstance(roc, Mapping):
        return None
    fpr, tpr, threshold = (
        _numbers(roc.get("fpr")),
        _numbers(roc.get("tpr")),
        _numbers(roc.get("threshold")),
    )
    if (
        fpr is None
        or tpr is None
        or threshold is None
        or not len(fpr) == len(tpr) == len(threshold)
    ):
        return None
    return fpr, tpr, threshold


def _roc_figure(fpr: list[float], tpr: list[float], auc: Any) -> Figure:
    figure, axes = _figure()
    label = f"ROC (AUC {auc:.3f})" if isinstance(auc, int | float) else "ROC"
    axes.plot(fpr, tpr, color="#1f5fa8", linewidth=2, label=label)
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right")
    return figure


def _ks_figure(fpr: list[float], tpr: list[float], threshold: list[float]) -> Figure:
    figure, axes = _figure()
    axes.plot(threshold, tpr, color="#1f5fa8", linewidth=2, label="positives above threshold (TPR)")
    axes.plot(threshold, fpr, color="#c0392b", linewidth=2, label="negatives above threshold (FPR)")
    gaps = [t - f for t, f in zip(tpr, fpr, strict=True)]
    best = max(range(len(gaps)), key=gaps.__getitem__)
    axes.vlines(threshold[best], fpr[best], tpr[best], colors="#333333", linestyles=":")
    axes.annotate(f"KS {gaps[best]:.3f}", (threshold[best], (fpr[best] + tpr[best]) / 2))
    axes.set(xlabel="score threshold", ylabel="share of class", xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="upper right", fontsize="small")
    return figure


def _confusion_figure(matrix: list[list[float]], names: list[str]) -> Figure:
    figure, axes = _figure()
    axes.grid(False)
    axes.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1.0
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            axes.text(j, i, f"{value:g}", ha="center", va="center", color=colour)
    ticks = list(range(len(names)))
    axes.set_xticks(ticks, names, rotation=45 if len(names) > 4 else 0)
    axes.set_yticks(ticks, names)
    axes.set(xlabel="predicted", ylabel="true")
    return figure


def _bars(values: Mapping[str, Any], *, xlabel: str) -> Figure | None:
    pairs = [(str(k), float(v)) for k, v in values.items() if _number(v)]
    if not pairs:
        return None
    pairs = sorted(pairs, key=lambda kv: abs(kv[1]))[-20:]  # the 20 largest, largest on top
    figure, axes = _figure()
    axes.barh([k for k, _ in pairs], [v for _, v in pairs], color="#1f5fa8")
    axes.set(xlabel=xlabel)
    return figure


def _confusion(metrics: Mapping[str, Any]) -> Figure | None:
    raw = _section(metrics, "confusion_matrix")
    if not isinstance(raw, list) or not raw:
        return None
    rows = [_numbers(row) for row in raw]
    if any(row is None or len(row) != len(raw) for row in rows):
        return None
    names = _section(metrics, "class_names")
    if not (isinstance(names, list) and len(names) == len(raw)):
        names = [str(i) for i in range(len(raw))]
    return _confusion_figure([row for row in rows if row is not None], [str(n) for n in names])


def _importance(raw: Any) -> dict[str, Any]:
    """``{feature: weight}`` from a mapping, or from tabular-train's GBDT list
    ``[{"column": name, "gain_share": share}, ...]``."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, list):
        return {
            str(item["column"]): item.get("gain_share")
            for item in raw
            if isinstance(item, Mapping) and "column" in item
        }
    return {}


def training_picture(records: Sequence[Mapping[str, Any]], *, fmt: str = "svg") -> Picture | None:
    """Loss and accuracy (and validation ones where present) by epoch, from per-epoch records
    or decrypted progress events; None when no record has an epoch and a curve value."""
    series: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        epoch = record.get("epoch")
        for name in _CURVES:
            value = record.get(name)
            if _number(epoch) and _number(value):
                series.setdefault(name, []).append((float(epoch), float(value)))
    if not series:
        return None
    figure, axes = _figure()
    for name, points in series.items():
        style = "--" if name.startswith("val_") else "-"
        axes.plot(*zip(*sorted(points), strict=True), style, marker="o", markersize=3, label=name)
    axes.set(xlabel="epoch")
    axes.legend(loc="best", fontsize="small")
    return Picture("training", "Training curves", render(figure, fmt=fmt), fmt)


def metric_pictures(metrics: Mapping[str, Any], *, fmt: str = "svg") -> list[Picture]:
    """Every picture the metrics document has data for, in reading order, as ``fmt``."""
    figures: list[tuple[str, str, Figure | None]] = []
    roc = _roc(metrics)
    if roc is not None:
        fpr, tpr, threshold = roc
        figures.append(("roc", "ROC curve", _roc_figure(fpr, tpr, _section(metrics, "auc"))))
        figures.append(("ks", "KS curve", _ks_figure(fpr, tpr, threshold)))
    figures.append(("confusion", "Confusion matrix", _confusion(metrics)))
    recall = _section(metrics, "per_class_recall")
    if isinstance(recall, Mapping):
        figures.append(("recall", "Recall per class", _bars(recall, xlabel="recall")))
    importance = _importance(_section(metrics, "feature_importance"))
    if importance:
        figures.append(("importance", "Feature importance", _bars(importance, xlabel="weight")))
    pictures = [
        Picture(key, title, render(figure, fmt=fmt), fmt)
        for key, title, figure in figures
        if figure is not None
    ]
    epochs = metrics.get("epochs")
    if isinstance(epochs, list):
        curve = training_picture([e for e in epochs if isinstance(e, Mapping)], fmt=fmt)
        if curve is not None:
            pictures.append(curve)
    return pictures


def metric_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers (AUC, KS, accuracy, n) wherever the document keeps them."""
    out: dict[str, Any] = {}
    for key in ("auc", "ks", "accuracy", "n", "n_train", "n_test"):
        value = _section(metrics, key)
        if _number(value):
            out[key] = value
    return out
