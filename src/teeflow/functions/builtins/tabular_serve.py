"""``tabular-serve``: an online inference session over a ``tabular-train`` model.

Input: ``model`` only. The enclave loads the model once and then answers each requester's sealed
requests (see enclave/session.py) until the session is canceled or reaches a limit. Output:
``usage``, written by the enclave when the session ends (request counts, never contents).

A request is a JSON object ``{"rows": [{"column": value, ...}, ...]}`` or a CSV table with the
model's feature columns (and its id column, if it has one). The answer is
``{"predictions": [{"<id column or row>": …, "probability": p, "label": 0|1}, ...]}``: the same
values ``tabular-predict`` writes for those rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.args import check_known, float_arg
from teeflow.functions.dl.scoring import TabularModel, prediction_columns

ARGUMENTS = {
    "requesters": "participants who may send requests (required)",
    "max_requests": "requests the session answers before it ends (default 100000)",
    "max_seconds": "seconds the session serves before it ends (default 3600)",
    "threshold": "probability above which a row is labelled 1 (default: the model's, 0.5)",
}
MAX_ROWS = 100_000


def run(ctx: Context) -> None:
    raise FunctionError(
        "tabular-serve runs as an inference session: run the task and send it requests "
        "(Client.infer / `teeflow task infer`)"
    )


def open_session(ctx: Context) -> TabularPredictor:
    """Check the arguments and load the model once (see functions/serving.py)."""
    check_known(ctx, ARGUMENTS)
    if set(ctx.inputs) != {"model"}:
        raise FunctionError("tabular-serve takes exactly one input, the slot 'model'")
    model = TabularModel.from_bytes(ctx.inputs["model"].read_bytes())
    threshold = float_arg(ctx, "threshold", float(model.config["threshold"]), low=0.0, high=1.0)
    return TabularPredictor(model, threshold=threshold)


class TabularPredictor:
    """Scores the rows of one request with the model it holds."""

    def __init__(self, model: TabularModel, *, threshold: float) -> None:
        self.model = model
        self.threshold = threshold
        self.id_column: str | None = model.config.get("id_column") or None

    def predict(self, request: bytes) -> dict[str, Any]:
        if request.lstrip()[:1] == b"{":
            features, ids, id_name = self._records(_json_rows(request))
        else:
            features, ids, id_name = self._table(_csv_table(request))
        names = self.model.class_names
        probability = (
            self.model.probabilities(features) if names else self.model.probability(features)
        )
        columns = prediction_columns(
            ids, probability, id_name=id_name, threshold=self.threshold, class_names=names
        )
        names = list(columns)
        # ids as the request gave them (a JSON list may mix types); numpy columns as Python values
        values = [v if isinstance(v, list) else np.asarray(v).tolist() for v in columns.values()]
        return {
            "predictions": [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        }

    def _records(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, Any, str]:
        features = self.model.preprocessor.transform_records(rows)
        if self.id_column and any(self.id_column in row for row in rows):
            return features, [row.get(self.id_column) for row in rows], self.id_column
        return features, list(range(len(rows))), "row"

    def _table(self, frame: pd.DataFrame) -> tuple[np.ndarray, Any, str]:
        features = self.model.preprocessor.transform(frame)
        if self.id_column and self.id_column in frame.columns:
            return features, frame[self.id_column].to_numpy(), self.id_column
        return features, list(range(len(frame))), "row"


def _json_rows(request: bytes) -> list[Mapping[str, Any]]:
    try:
        body = json.loads(request)
    except (ValueError, UnicodeDecodeError):
        raise FunctionError("the request is not valid JSON") from None
    rows = body.get("rows") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise FunctionError('a JSON request must be {"rows": [{"column": value, ...}, ...]}')
    _check_size(len(rows))
    return rows


def _csv_table(request: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(request))
    except (ValueError, UnicodeDecodeError, OSError):
        raise FunctionError("the request is neither JSON rows nor a readable CSV table") from None
    _check_size(len(frame))
    return frame


def _check_size(rows: int) -> None:
    if not 1 <= rows <= MAX_ROWS:
        raise FunctionError(f"a request holds 1 to {MAX_ROWS} rows, this one {rows}")
