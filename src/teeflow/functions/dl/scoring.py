"""Loading a tabular model blob and scoring tables with it (for tabular-predict and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.metrics import sigmoid
from teeflow.functions.dl.modelfile import ModelBlob, load_weights
from teeflow.functions.dl.networks import build_tabular_model
from teeflow.functions.dl.tables import PARTITIONS, Preprocessor, combine_tables, read_tables
from teeflow.functions.dl.training import predict_logits

__all__ = ["Scored", "binary_target", "score_inputs"]


@dataclass
class Scored:
    frame: pd.DataFrame
    """The combined input table (rows in scoring order)."""
    probability: np.ndarray
    config: dict[str, Any]


def binary_target(values: pd.Series, *, column: str, positive_label: str | None) -> np.ndarray:
    """0/1 targets: ``positive_label`` marks the positive class, else the column must be 0/1."""
    if values.isna().any():
        raise FunctionError(f"label column {column!r} has missing values; drop those rows first")
    if positive_label is not None:
        target = (values.astype(str) == str(positive_label)).to_numpy()
        if not target.any():
            raise FunctionError(f"no row has label {positive_label!r} in column {column!r}")
        return np.asarray(target, dtype=np.int64)
    if pd.api.types.is_bool_dtype(values) or (
        pd.api.types.is_numeric_dtype(values) and set(values.unique()) <= {0, 1}
    ):
        return np.asarray(values.to_numpy(), dtype=np.int64)
    raise FunctionError(
        f"label column {column!r} is not 0/1; set the argument 'positive_label' to the value "
        "that marks the positive class"
    )


def score_inputs(ctx: Context, *, model_slot: str = "model") -> Scored:
    """Combine every non-model input slot as the training did and score it with the model."""
    if model_slot not in ctx.inputs:
        raise FunctionError(f"this function needs an input slot named {model_slot!r}")
    slots = sorted(slot for slot in ctx.inputs if slot != model_slot)
    if not slots:
        raise FunctionError("this function needs at least one table input besides the model")
    blob = ModelBlob.from_bytes(ctx.inputs[model_slot].read_bytes(), kind="tabular")
    config = blob.config
    partition = ctx.arg("partition", "auto")
    if partition not in PARTITIONS:
        raise FunctionError(f"argument 'partition' must be one of {', '.join(PARTITIONS)}")
    tables = read_tables(ctx.inputs, slots)
    combined = combine_tables(tables, partition=partition, id_column=config.get("id_column"))
    preprocessor = Preprocessor.from_dict(config["preprocessing"])
    features = preprocessor.transform(combined.frame)
    model = build_tabular_model(config)
    load_weights(model, blob.weights)
    probability = sigmoid(predict_logits(model, features)[:, 0])
    return Scored(frame=combined.frame, probability=probability, config=config)
