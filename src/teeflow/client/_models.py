"""A model a member holds in plaintext, exported for use outside teeflow (docs/model-format.md).

:func:`export_model` reads a ``teeflow-model/2`` file (an output addressed to the member,
decrypted on its own machine) and writes it in a format the field's own tools load:

* ``logistic`` / ``mlp`` table models and ``cnn`` / ``resnet18`` image models: PaddlePaddle's
  inference format (``paddle.jit.save``: ``model.json`` or ``model.pdmodel``, plus
  ``model.pdiparams``), loadable with ``paddle.inference.Config`` / ``create_predictor``. The
  preprocessing is inside the graph: a table model takes raw feature values (float64) in the
  documented column order, fills a missing (NaN) number with the training mean, standardises,
  and one-hot encodes a text column given as its category's index; an image model takes float
  pixels in [0, 1] at the model's image size and normalises them. The output is class
  probabilities.
* ``gbdt`` table models: LightGBM's own text model format (``model.txt``), which LightGBM's
  ``Booster(model_file=...)`` loads. Its trees split the *encoded* features (standardised numbers,
  one-hot text), so the preprocessing is not inside it: ``features.json`` gives it.

Every export writes ``features.json``: the input order, the statistics, the class names.
Building the network runs nothing from the file: it is rebuilt from the config and loaded from
``.npz`` arrays, never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from teeflow.client._errors import ClientError

__all__ = ["export_model"]


def export_model(data: bytes, out: Path) -> dict[str, Any]:
    """Export the teeflow model ``data`` into directory ``out`` (created; existing files of the
    same names are replaced). Returns ``{"format", "files", "inputs", "outputs"}``.

    Raises ClientError when ``data`` is not a teeflow model this version reads.
    """
    from teeflow.functions.api import FunctionError
    from teeflow.functions.dl.modelfile import ModelBlob

    try:
        kind = ModelBlob.kind_of(data)
        blob = ModelBlob.from_bytes(data, kind=kind)
    except FunctionError as exc:
        raise ClientError(f"cannot export: {exc}") from exc
    out.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "image":
            description = _export_image(blob, out)
        elif blob.config.get("model") == "gbdt":
            description = _export_gbdt(blob, out)
        else:
            description = _export_table(blob, out)
    except FunctionError as exc:
        raise ClientError(f"cannot export: {exc}") from exc
    (out / "features.json").write_text(json.dumps(description, indent=1), encoding="utf-8")
    files = sorted(path.name for path in out.iterdir() if path.is_file())
    return {**description, "files": files}


def _export_table(blob: Any, out: Path) -> dict[str, Any]:
    import paddle

    from teeflow.client._export_graphs import TableGraph
    from teeflow.functions.dl.scoring import TabularModel
    from teeflow.functions.dl.tables import Preprocessor

    preprocessor = Preprocessor.from_dict(blob.config["preprocessing"])
    model = TabularModel.build(blob.config, preprocessor, weights=blob.weights, extra=blob.extra)
    classes = model.class_names
    layer = TableGraph(preprocessor, model.network, multiclass=classes is not None)
    layer.eval()
    spec = paddle.static.InputSpec(
        shape=[None, len(preprocessor.columns)], dtype="float64", name="x"
    )
    paddle.jit.save(layer, str(out / "model"), input_spec=[spec])
    return {
        "format": "paddle-inference",
        "model": blob.config["model"],
        "inputs": [
            *(
                {"column": c, "type": "number", "mean": m, "std": s}
                for c, (m, s) in preprocessor.numeric.items()
            ),
            *(
                {"column": c, "type": "category index", "categories": cats}
                for c, cats in preprocessor.categorical.items()
            ),
        ],
        "outputs": _outputs(classes, blob.config.get("positive_label")),
        "preprocessing_in_graph": True,
    }


def _export_gbdt(blob: Any, out: Path) -> dict[str, Any]:
    from teeflow.functions.dl.gbdt import BOOSTER_MEMBER
    from teeflow.functions.dl.tables import Preprocessor

    preprocessor = Preprocessor.from_dict(blob.config["preprocessing"])
    if BOOSTER_MEMBER not in blob.extra:
        raise ClientError("cannot export: the gbdt model has no trees (booster.txt)")
    (out / "model.txt").write_bytes(blob.extra[BOOSTER_MEMBER])
    classes = blob.config.get("class_names") or None
    return {
        "format": "lightgbm-text",
        "model": "gbdt",
        "inputs": [
            *(
                {"column": c, "type": "standardised number", "mean": m, "std": s}
                for c, (m, s) in preprocessor.numeric.items()
            ),
            *(
                {"column": c, "type": "one-hot", "categories": cats}
                for c, cats in preprocessor.categorical.items()
            ),
        ],
        "encoded_features": preprocessor.encoded_columns,
        "outputs": _outputs(classes, blob.config.get("positive_label")),
        "preprocessing_in_graph": False,
    }


def _export_image(blob: Any, out: Path) -> dict[str, Any]:
    import paddle

    from teeflow.client._export_graphs import ImageGraph
    from teeflow.functions.dl.modelfile import load_weights
    from teeflow.functions.dl.networks import build_image_model
    from teeflow.functions.dl.transforms import ImageTransform

    config = blob.config
    network = build_image_model(config)
    load_weights(network, blob.weights)
    transform = ImageTransform.from_config(config.get("transform"))
    channels, (height, width) = int(config["channels"]), config["image_size"]
    layer = ImageGraph(network, transform, channels=channels)
    layer.eval()
    spec = paddle.static.InputSpec(
        shape=[None, channels, int(height), int(width)], dtype="float32", name="x"
    )
    paddle.jit.save(layer, str(out / "model"), input_spec=[spec])
    return {
        "format": "paddle-inference",
        "model": config["model"],
        "inputs": {
            "shape": ["N", channels, int(height), int(width)],
            "pixels": "float32 in [0, 1], resized to the image size first",
            "normalise": transform.to_config(),
        },
        "outputs": {"probabilities": [str(name) for name in config["class_names"]]},
        "preprocessing_in_graph": True,
    }


def _outputs(classes: list[str] | None, positive_label: str | None) -> dict[str, Any]:
    if classes:
        return {"probabilities": list(classes)}
    return {"probability_of": positive_label if positive_label is not None else "1"}
