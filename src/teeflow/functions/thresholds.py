"""Aggregation thresholds: no disclosed aggregate covers fewer rows than the owners allow.

Every input policy may set ``min_rows`` (enclave/policies.py); the enclave hands the strictest one
to the function as ``ctx.min_rows``. The built-ins call these helpers before they write a metric,
an intersection size, a join result or per-class counts; an aggregate over fewer rows is replaced
by a ``withheld`` note that says why, so the parties learn that it was withheld and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from teeflow.functions.api import FunctionError

__all__ = [
    "PER_CLASS_KEYS",
    "guard_aggregate",
    "guard_metrics",
    "guard_per_class",
    "require_rows",
    "withheld",
]

PER_CLASS_KEYS = ("confusion_matrix", "per_class_recall")
"""Metric fields that are counts or rates per class, each over that class's rows only."""


def withheld(what: str, rows: int, min_rows: int) -> dict[str, Any]:
    """The note that stands in for an aggregate over ``rows`` < ``min_rows`` rows."""
    return {
        "withheld": f"{what} covers {rows} row(s), fewer than the {min_rows} the strictest "
        "input policy allows (rule 'min_rows')",
        "min_rows": min_rows,
    }


def guard_aggregate(
    metrics: Mapping[str, Any], *, rows: int, min_rows: int, what: str
) -> dict[str, Any]:
    """``metrics`` as they are when ``rows`` >= ``min_rows``, else the :func:`withheld` note."""
    if rows < min_rows:
        return withheld(what, rows, min_rows)
    return dict(metrics)


def guard_per_class(
    metrics: Mapping[str, Any], *, class_rows: Sequence[int], min_rows: int
) -> dict[str, Any]:
    """Drop per-class counts (:data:`PER_CLASS_KEYS`) when any class has fewer than ``min_rows``
    rows: a confusion-matrix row over three patients is nearly those patients' labels."""
    small = [n for n in class_rows if n < min_rows]
    if not small:
        return dict(metrics)
    kept = {key: value for key, value in metrics.items() if key not in PER_CLASS_KEYS}
    for key in PER_CLASS_KEYS:
        if key in metrics:
            kept[key] = withheld(f"{key} (smallest class)", min(small), min_rows)
    return kept


def require_rows(rows: int, *, min_rows: int, what: str) -> None:
    """Fail the function (nothing leaves) when a row-level output rests on too few rows: a
    join of three common ids is those three ids' amounts."""
    if rows < min_rows:
        raise FunctionError(withheld(what, rows, min_rows)["withheld"] + "; nothing was written")


def guard_metrics(
    metrics: Mapping[str, Any], *, labels: Iterable[Any], min_rows: int, what: str
) -> dict[str, Any]:
    """Both guards for evaluation metrics over rows labelled ``labels``: the whole set must
    reach ``min_rows`` rows, and per-class counts need every present class to reach it."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[str(label)] = counts.get(str(label), 0) + 1
    guarded = guard_per_class(metrics, class_rows=list(counts.values()), min_rows=min_rows)
    rows = sum(counts.values())
    return guard_aggregate(guarded, rows=rows, min_rows=min_rows, what=what)
