"""Loading a tabular model blob and scoring tables with it (for tabular-predict and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.gbdt import BOOSTER_MEMBER, load_booster, raw_scores
from teeflow.functions.dl.metrics import class_probabilities, sigmoid
from teeflow.functions.dl.modelfile import ModelBlob, load_weights
from teeflow.functions.dl.networks import build_tabular_model
from teeflow.functions.dl.tables import (
    PARTITIONS,
    Preprocessor,
    combine_tables,
    read_tables,
    with_common_id,
)
from teeflow.functions.dl.training import predict_logits
from teeflow.functions.ids import id_columns_arg

__all__ = [
    "SCORING_BATCH",
    "Scored",
    "TabularModel",
    "binary_target",
    "class_target",
    "model_target",
    "prediction_columns",
    "score_inputs",
]

SCORING_BATCH = 256
"""Rows per Paddle forward when a table is scored."""
_BATCH = SCORING_BATCH
MAX_CLASSES = 50


@dataclass
class Scored:
    frame: pd.DataFrame
    """The combined input table (rows in scoring order)."""
    probabilities: np.ndarray
    """(rows, classes) class probabilities; for a 0/1 model, columns ``[1 - p, p]``."""
    config: dict[str, Any]

    @property
    def probability(self) -> np.ndarray:
        """Positive-class probability (the last column) of a 0/1 model."""
        result: np.ndarray = self.probabilities[:, -1]
        return result


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


def class_target(
    values: pd.Series, *, column: str, positive_label: str | None
) -> tuple[np.ndarray, list[str] | None]:
    """Targets and class names of a label column: 0/1 (class names ``None``) when
    ``positive_label`` is given or the column is 0/1, else class indices into the sorted
    distinct values (as text), for 3 to :data:`MAX_CLASSES` classes."""
    if positive_label is not None or values.isna().any():
        return binary_target(values, column=column, positive_label=positive_label), None
    names = sorted({str(value) for value in values})
    is_01 = pd.api.types.is_bool_dtype(values) or (
        pd.api.types.is_numeric_dtype(values) and set(values.unique()) <= {0, 1}
    )
    if is_01 or len(names) == 2:
        return binary_target(values, column=column, positive_label=None), None
    if len(names) > MAX_CLASSES:
        raise FunctionError(
            f"label column {column!r} is not 0/1 and has {len(names)} distinct values, more "
            f"than the {MAX_CLASSES} classes a classifier takes; is it a continuous column?"
        )
    lookup = {name: index for index, name in enumerate(names)}
    return np.array([lookup[str(value)] for value in values], dtype=np.int64), names


def model_target(values: pd.Series, *, column: str, config: dict[str, Any]) -> np.ndarray:
    """Targets of labelled rows in a trained model's terms (its positive label or classes)."""
    names = config.get("class_names")
    if not names:
        return binary_target(values, column=column, positive_label=config.get("positive_label"))
    if values.isna().any():
        raise FunctionError(f"label column {column!r} has missing values; drop those rows first")
    lookup = {str(name): index for index, name in enumerate(names)}
    unknown = int(sum(str(value) not in lookup for value in values))
    if unknown:
        raise FunctionError(
            f"{unknown} row(s) of label column {column!r} hold a class the model was not "
            f"trained on (it knows {len(names)} classes); drop those rows"
        )
    return np.array([lookup[str(value)] for value in values], dtype=np.int64)


@dataclass
class TabularModel:
    """A ``tabular-train`` model, loaded once: its config, preprocessing and network (eval mode).

    ``tabular-predict`` and ``evaluate`` load it per task; ``tabular-serve`` loads it once per
    inference session and scores every request with it.
    """

    config: dict[str, Any]
    preprocessor: Preprocessor
    network: Any
    """The Paddle network, in evaluation mode; for ``gbdt`` the LightGBM booster."""

    @classmethod
    def from_bytes(cls, data: bytes) -> TabularModel:
        blob = ModelBlob.from_bytes(data, kind="tabular")
        preprocessor = Preprocessor.from_dict(blob.config["preprocessing"])
        return cls.build(blob.config, preprocessor, weights=blob.weights, extra=blob.extra)

    @classmethod
    def build(
        cls,
        config: dict[str, Any],
        preprocessor: Preprocessor,
        *,
        weights: dict[str, np.ndarray],
        extra: dict[str, bytes],
    ) -> TabularModel:
        """The model of ``config`` with its network weights, or (gbdt) the trees in ``extra``."""
        if config.get("in_features") != preprocessor.width:
            raise FunctionError("the model's preprocessing does not match its input width")
        if config.get("model") == "gbdt":
            if BOOSTER_MEMBER not in extra:
                raise FunctionError("the gbdt model has no trees (booster.txt)")
            classes = len(config.get("class_names") or []) or 1
            network = load_booster(
                extra[BOOSTER_MEMBER].decode("utf-8", errors="replace"),
                in_features=preprocessor.width,
                outputs=classes,
            )
        else:
            network = build_tabular_model(config)
            load_weights(network, weights)
        return cls(config=config, preprocessor=preprocessor, network=network)

    @property
    def class_names(self) -> list[str] | None:
        """The classes of a multi-class model, in output order; ``None`` for a 0/1 model."""
        names = self.config.get("class_names")
        return [str(name) for name in names] if names else None

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(rows, classes) probabilities of already encoded rows; ``[1 - p, p]`` for 0/1."""
        return class_probabilities(self._logits(features), multiclass=self.class_names is not None)

    def _logits(self, features: np.ndarray) -> np.ndarray:
        if self.config.get("model") == "gbdt":
            return raw_scores(self.network, features)
        if 0 < len(features) <= _BATCH:
            # One batch, as predict_logits computes it, minus its per-call set-up (eval(),
            # to_tensor's checks): a tenth of a millisecond on an online request of a few rows.
            with paddle.no_grad():
                tensor = paddle.Tensor(np.ascontiguousarray(features, dtype=np.float32))
                logits: np.ndarray = self.network(tensor).numpy().astype(np.float64)
            return logits
        return predict_logits(self.network, features, batch_size=_BATCH)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Positive-class probability of already encoded rows (in batches of 256)."""
        result: np.ndarray = sigmoid(self._logits(features)[:, 0])
        return result

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (0/1 model) of a table's rows."""
        return self.probability(self.preprocessor.transform(frame))


def prediction_columns(
    ids: Any,
    probability: np.ndarray,
    *,
    id_name: str,
    threshold: float,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """The columns ``tabular-predict`` writes: the id (or ``row``), then for a 0/1 model the
    probability rounded to 6 digits and the 0/1 label at ``threshold`` (of the unrounded
    probability); for a multi-class model (``probability`` of shape (rows, classes)) the
    ``predicted`` class and one ``p_<class>`` column per class."""
    if class_names is not None:
        columns: dict[str, Any] = {
            id_name: ids,
            "predicted": [class_names[i] for i in probability.argmax(axis=1)],
        }
        for index, name in enumerate(class_names):
            columns[f"p_{name}"] = probability[:, index].round(6)
        return columns
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
    key = model.config.get("id_column")
    named = id_columns_arg(ctx, slots=slots)
    if named and not key:
        raise FunctionError("the model has no id column; drop the argument 'id_columns'")
    tables, _ = with_common_id(read_tables(ctx.inputs, slots), id_column=key, id_columns=named)
    combined = combine_tables(tables, partition=partition, id_column=key)
    probabilities = model.probabilities(model.preprocessor.transform(combined.frame))
    return Scored(frame=combined.frame, probabilities=probabilities, config=model.config)
