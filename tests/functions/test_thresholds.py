"""Aggregation thresholds: built-ins withhold aggregates over fewer rows than ``ctx.min_rows``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teeflow.functions.api import Context, FunctionError, InputData, OutputData
from teeflow.functions.registry import get_builtin
from teeflow.functions.thresholds import guard_metrics


def _run(name: str, inputs: dict[str, bytes], outputs: tuple[str, ...], min_rows: int, tmp: Path):  # type: ignore[no-untyped-def]
    slots = {slot: OutputData(slot) for slot in outputs}
    ctx = Context(
        inputs={s: InputData(s, d) for s, d in inputs.items()},
        args={},
        outputs=slots,
        scratch=tmp,
        min_rows=min_rows,
    )
    get_builtin(name).load()(ctx)
    return {slot: out.getvalue() for slot, out in slots.items()}


IDS_A = b"id\n" + b"".join(b"u%d\n" % i for i in range(30))
IDS_B = b"id\n" + b"".join(b"u%d\n" % i for i in range(0, 30, 5)) + b"x1\n"


@pytest.mark.parametrize(("min_rows", "shown"), [(0, True), (6, True), (7, False)])
def test_psi_size_is_withheld_below_the_threshold(
    tmp_path: Path, min_rows: int, shown: bool
) -> None:
    out = _run("psi", {"a": IDS_A, "b": IDS_B}, ("intersection_size",), min_rows, tmp_path)

    result = json.loads(out["intersection_size"])
    if shown:
        assert result == {"size": 6}
    else:
        assert "size" not in result and "covers 6 row(s), fewer than the 7" in result["withheld"]


def test_join_over_too_few_common_ids_writes_nothing(tmp_path: Path) -> None:
    a = b"id,amount\n1,5\n2,6\n3,1\n"
    b = b"id,amount\n2,1\n3,2\n9,9\n"

    with pytest.raises(FunctionError, match="covers 2 row\\(s\\), fewer than the 3"):
        _run("private-join-sum", {"a": a, "b": b}, ("result",), 3, tmp_path)
    assert _run("private-join-sum", {"a": a, "b": b}, ("result",), 2, tmp_path)["result"]


def test_metrics_over_too_few_rows_are_withheld_whole() -> None:
    metrics = {"auc": 0.9, "accuracy": 0.8, "confusion_matrix": [[2, 0], [1, 2]]}

    result = guard_metrics(metrics, labels=[0, 0, 1, 1, 1], min_rows=6, what="the metrics")

    assert set(result) == {"withheld", "min_rows"}


def test_per_class_counts_of_a_small_class_are_withheld_the_rest_kept() -> None:
    metrics = {"auc": 0.9, "confusion_matrix": [[40, 0], [1, 2]], "per_class_recall": {"a": 1}}
    labels = [0] * 40 + [1] * 3

    result = guard_metrics(metrics, labels=labels, min_rows=10, what="the metrics")

    assert result["auc"] == 0.9
    assert "withheld" in result["confusion_matrix"] and "withheld" in result["per_class_recall"]
    assert guard_metrics(metrics, labels=labels, min_rows=3, what="m") == metrics
