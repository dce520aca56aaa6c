"""``tabular-serve``: an online inference session over a ``tabular-train`` model.

Inputs: ``model``, and optionally tables the enclave holds for the session (e.g. ``bureau``: a
credit bureau's columns of a model trained on bank + bureau): each request's rows are joined to
them by the model's id column. The enclave loads all of it once and then answers each
requester's sealed requests (see enclave/session.py) until the session is canceled or reaches a
limit. Output: ``usage``, written by the enclave when the session ends (request counts, never
contents).

A request is a JSON object ``{"rows": [{"column": value, ...}, ...]}`` or a CSV table with the
model's feature columns that the held tables do not provide (and its id column: required when
tables are held). With held tables, every id of a request must be in every held table, or the
request is refused saying how many are not (so a requester learns which of the ids it sends a
held table holds, as in ``psi``; its owner accepts that by approving). The answer is
``{"predictions": [{"<id column or row>": …, "probability": p, "label": 0|1}, ...]}`` (for a
multi-class model ``predicted`` and ``p_<class>``): the same values ``tabular-predict`` writes
for those rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.signatures import TABULAR_SERVE
from teeflow.functions.dl.args import check_known, declared_float
from teeflow.functions.dl.scoring import TabularModel, prediction_columns
from teeflow.functions.dl.tables import combine_tables, read_tables, with_common_id
from teeflow.functions.ids import id_columns_arg
from teeflow.functions.serving import check_rows

REQUEST = "request"


def run(ctx: Context) -> None:
    raise FunctionError(
        "tabular-serve runs as an inference session: run the task and send it requests "
        "(Client.infer / `teeflow task infer`)"
    )


def open_session(ctx: Context) -> TabularPredictor:
    """Check the arguments and load the model once (see functions/serving.py)."""
    check_known(ctx, TABULAR_SERVE)
    if "model" not in ctx.inputs:
        raise FunctionError("tabular-serve needs an input slot named 'model'")
    model = TabularModel.from_bytes(ctx.inputs["model"].read_bytes())
    threshold = declared_float(
        ctx, TABULAR_SERVE, "threshold", default=float(model.config["threshold"])
    )
    held_slots = sorted(slot for slot in ctx.inputs if slot != "model")
    named = id_columns_arg(ctx, slots=[*held_slots, REQUEST])
    key: str | None = model.config.get("id_column") or None
    if named and key is None:
        raise FunctionError("the model has no id column; drop the argument 'id_columns'")
    held = None
    if held_slots:
        if key is None:
            raise FunctionError("the model has no id column to join the held tables on")
        tables, _ = with_common_id(
            read_tables(ctx.inputs, held_slots),
            id_column=key,
            id_columns={slot: name for slot, name in named.items() if slot != REQUEST},
        )
        joined = combine_tables(tables, partition="columns", id_column=key).frame
        held = HeldTables(joined.set_index(joined[key].astype(str)).drop(columns=[key]), held_slots)
    return TabularPredictor(
        model, threshold=threshold, held=held, request_id=named.get(REQUEST, key)
    )


class HeldTables:
    """Columns the enclave holds for a session, indexed by id (as text), joined to requests."""

    def __init__(self, frame: pd.DataFrame, slots: list[str]) -> None:
        self.frame = frame
        self.slots = slots

    def join(self, request: pd.DataFrame, *, id_column: str) -> pd.DataFrame:
        """``request`` with the held columns of each row's id. FunctionError when the request has
        no id column, repeats a held column, or holds ids a held table lacks (a count only)."""
        if id_column not in request.columns:
            raise FunctionError(
                f"each request row needs the id column {id_column!r} to be joined to the "
                f"held input(s) {', '.join(self.slots)}"
            )
        clash = sorted(set(request.columns) & set(self.frame.columns))
        if clash:
            raise FunctionError(
                f"request column(s) {clash} come from the held input(s) "
                f"{', '.join(self.slots)}; leave them out"
            )
        ids = request[id_column].astype(str)
        missing = int((~ids.isin(self.frame.index)).sum())
        if missing:
            raise FunctionError(
                f"{missing} request row(s) have an id that the held input(s) "
                f"{', '.join(self.slots)} do not hold; leave them out"
            )
        extra = self.frame.loc[ids.to_numpy()].reset_index(drop=True)
        return pd.concat([request.reset_index(drop=True), extra], axis=1)


class TabularPredictor:
    """Scores the rows of one request with the model it holds."""

    def __init__(
        self,
        model: TabularModel,
        *,
        threshold: float,
        held: HeldTables | None = None,
        request_id: str | None = None,
    ) -> None:
        self.model = model
        self.threshold = threshold
        self.held = held
        self.id_column: str | None = request_id or model.config.get("id_column") or None

    def predict(self, request: bytes, *, max_rows: int) -> dict[str, Any]:
        if request.lstrip()[:1] == b"{":
            rows = _json_rows(request)
            check_rows(len(rows), max_rows)
            if self.held is not None:
                features, ids, id_name = self._table(pd.DataFrame.from_records(rows))
            else:
                features, ids, id_name = self._records(rows)
        else:
            frame = _csv_table(request)
            check_rows(len(frame), max_rows)
            features, ids, id_name = self._table(frame)
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
        if self.held is not None and self.id_column is not None:
            frame = self.held.join(frame, id_column=self.id_column)
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
    return rows


def _csv_table(request: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(request))
    except (ValueError, UnicodeDecodeError, OSError):
        raise FunctionError("the request is neither JSON rows nor a readable CSV table") from None
    return frame
