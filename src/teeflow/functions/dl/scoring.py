"""Loading a tabular model blob and scoring tables with it (for tabular-predict and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.metrics import sigmoid
from teeflow.functions.dl.modelfile import ModelBlob, load_weights
from teeflow.functions.dl.networks import build_tabular_model
from teeflow.functions.dl.tables import PARTITIONS, Preprocessor, combine_tables, read_tables
from teeflow.functions.dl.training import predict_logits

__all__ = ["Scored", "TabularModel", "binary_target", "prediction_columns", "score_inputs"]

_BATCH = 256


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


@dataclass
class TabularModel:
    """A ``tabular-train`` model, loaded once: its config, preprocessing and network (eval mode).

    ``tabular-predict`` and ``evaluate`` load it per task; ``tabular-serve`` loads it once per
    inference session and scores every request with it.
    """

    config: dict[str, Any]
    preprocessor: Preprocessor
    network: Any
    """The Paddle network, in evaluation mode."""

    @classmethod
    def from_bytes(cls, data: bytes) -> TabularModel:
        blob = ModelBlob.from_bytes(data, kind="tabular")
        preprocessor = Preprocessor.from_dict(blob.config["preprocessing"])
        network = build_tabular_model(blob.config)
        load_weights(network, blob.weights)
        return cls(config=blob.config, preprocessor=preprocessor, network=network)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Positive-class probability of already encoded rows (in batches of 256)."""
        if 0 < len(features) <= _BATCH:
            # One batch, as predict_logits computes it, minus its per-call set-up (eval(),
            # to_tensor's checks): a tenth of a millisecond on an online request of a few rows.
            with paddle.no_grad():
                tensor = paddle.Tensor(np.ascontiguousarray(features, dtype=np.float32))
                logits = self.network(tensor).numpy().astype(np.float64)
        else:
            logits = predict_logits(self.network, features, batch_size=_BATCH)
        result: np.ndarray = sigmoid(logits[:, 0])
        return result

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.probability(self.preprocessor.transform(frame))


def prediction_columns(
    ids: Any, probability: np.ndarray, *, id_name: str, threshold: float
) -> dict[str, Any]:
    """The columns ``tabular-predict`` writes: the id (or ``row``), the probability rounded to 6
    digits and the 0/1 label at ``threshold`` (of the unrounded probability)."""
    return {
        id_name: ids,
        "probability": probability.round(6),
        "label": (probability >= threshold).astype(int),
    }


def score_inputs(ctx: Context, *, model_slot: str = "model") -> Scored:
    """Combine every non-model input slot as the training did and score it with the model."""
    if model_slot not in ctx.inputs:
        raise FunctionError(f"this function needs an input slot named {model_slot!r}")
    slots = sorted(slot for slot in ctx.inputs if slot != model_slot)
    if not slots:
        raise FunctionError("this function needs at least one table input besides the model")
    model = TabularModel.from_bytes(ctx.inputs[model_slot].read_bytes())
    partition = ctx.arg("partition", "auto")
    if partition not in PARTITIONS:
        raise FunctionError(f"argument 'partition' must be one of {', '.join(PARTITIONS)}")
    tables = read_tables(ctx.inputs, slots)
    combined = combine_tables(tables, partition=partition, id_column=model.config.get("id_column"))
    probability = model.score(combined.frame)
    return Scored(frame=combined.frame, probability=probability, config=model.config)
