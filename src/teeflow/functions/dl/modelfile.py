"""The model blob a trainer writes and a predictor reads: one zip, no pickles.

Layout::

    config.json        kind ("image" | "tabular"), architecture, classes, preprocessing
    weights.npz        the network's state dict (what predictors load)
    inference/...      optional Paddle inference export (``paddle.jit.save``), for outside use

Predictors rebuild the network from ``config.json`` and load ``weights.npz``; they never execute
anything from the blob, which may come from another party.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from teeflow.functions.api import FunctionError
from teeflow.functions.dl.state import (
    arrays_from_npz,
    arrays_to_npz,
    exact_json,
    read_zip,
    write_zip,
)

__all__ = ["MODEL_FORMAT", "ModelBlob", "load_weights"]

MODEL_FORMAT = "teeflow-model/2"
# teeflow-model/1 saved config.json with sorted keys, which lost a tabular model's feature order;
# image models of that format carry no order-bearing mapping and still load.
_READABLE = {"image": (MODEL_FORMAT, "teeflow-model/1"), "tabular": (MODEL_FORMAT,)}


@dataclass
class ModelBlob:
    config: dict[str, Any]
    weights: dict[str, np.ndarray]
    extra: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        members = {
            "config.json": exact_json(
                {"format": MODEL_FORMAT, **self.config}, what="the model config"
            ),
            "weights.npz": arrays_to_npz(self.weights),
        }
        members.update(self.extra)
        return write_zip(members)

    @classmethod
    def from_bytes(cls, data: bytes, *, kind: str) -> ModelBlob:
        members = read_zip(data, what="the model input")
        not_a_model = "the model input is not a teeflow model (no config.json / weights.npz)"
        try:
            config = json.loads(members.pop("config.json"))
        except (KeyError, ValueError) as exc:
            raise FunctionError(not_a_model) from exc
        if not isinstance(config, dict) or not str(config.get("format")).startswith(
            "teeflow-model/"
        ):
            raise FunctionError(f"the model input is not in format {MODEL_FORMAT!r}")
        if config.get("kind") != kind:
            raise FunctionError(
                f"the model input is a {config.get('kind')!r} model; this function needs a "
                f"{kind!r} model"
            )
        if config["format"] not in _READABLE.get(kind, ()):
            raise FunctionError(
                f"the model input is in format {config['format']!r}, which did not record its "
                f"feature order; train the model again (this teeflow writes {MODEL_FORMAT!r})"
            )
        try:
            weights = arrays_from_npz(members.pop("weights.npz"))
        except (KeyError, ValueError) as exc:
            raise FunctionError(not_a_model) from exc
        return cls(config=config, weights=weights, extra=members)

    @staticmethod
    def kind_of(data: bytes) -> str:
        """The ``kind`` a model blob declares ("image" | "tabular"), FunctionError if none."""
        members = read_zip(data, what="the model input")
        try:
            config = json.loads(members["config.json"])
            return str(config["kind"])
        except (KeyError, ValueError, TypeError) as exc:
            raise FunctionError("the model input is not a teeflow model (no config.json)") from exc

    @staticmethod
    def export_inference(
        model: Any, *, input_shape: list[int | None], scratch: Path
    ) -> dict[str, bytes]:
        """``paddle.jit.save`` the model into scratch and return the files under ``inference/``."""
        import paddle

        target = scratch / "inference"
        target.mkdir(parents=True, exist_ok=True)
        spec = paddle.static.InputSpec(shape=input_shape, dtype="float32", name="x")
        paddle.jit.save(model, str(target / "model"), input_spec=[spec])
        return {
            f"inference/{path.name}": path.read_bytes()
            for path in sorted(target.iterdir())
            if path.is_file()
        }


def load_weights(model: Any, weights: Mapping[str, np.ndarray]) -> None:
    """Load ``weights`` into ``model``, failing with a party-facing error on any mismatch."""
    import paddle

    expected = model.state_dict()
    if set(expected) != set(weights):
        raise FunctionError("the model's weights do not match its declared architecture")
    for name, tensor in expected.items():
        if tuple(tensor.shape) != tuple(weights[name].shape):
            raise FunctionError(f"the model's weight {name!r} has the wrong shape")
    model.set_state_dict({name: paddle.to_tensor(value) for name, value in weights.items()})
    model.eval()
