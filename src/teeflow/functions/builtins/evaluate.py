"""``evaluate``: a trained model's metrics on new labelled data.

A ``tabular-train`` model on labelled tables: AUC, KS, accuracy and confusion matrix for a 0/1
model; accuracy, per-class recall, confusion matrix and one-vs-rest macro AUC for a multi-class
one. An ``image-classify-train`` model on labelled images (a MedMNIST ``.npz``, every split, or a
zip of class folders), prepared as in training: accuracy, per-class recall, confusion matrix and
macro AUC.

Inputs: ``model`` and one or more labelled tables (every other slot, combined as in training)
or image inputs. Output: ``metrics`` (JSON aggregates only; no row values).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.signatures import EVALUATE
from teeflow.functions.dl.args import check_known, declared_float, output_slots
from teeflow.functions.dl.metrics import multiclass_metrics, table_metrics
from teeflow.functions.dl.modelfile import ModelBlob
from teeflow.functions.dl.scoring import model_target, score_inputs
from teeflow.functions.thresholds import guard_metrics


def run(ctx: Context) -> None:
    check_known(ctx, EVALUATE)
    outputs = output_slots(ctx, allowed=("metrics",), required_any=("metrics",))
    if "model" not in ctx.inputs:
        raise FunctionError("evaluate needs an input slot named 'model'")
    if ModelBlob.kind_of(ctx.inputs["model"].read_bytes()) == "image":
        image, labels = _image_metrics(ctx)
        outputs["metrics"].write_json(
            guard_metrics(image, labels=labels, min_rows=ctx.min_rows, what="the metrics")
        )
        return
    scored = score_inputs(ctx)
    threshold = declared_float(
        ctx, EVALUATE, "threshold", default=float(scored.config["threshold"])
    )
    label = str(scored.config["label_column"])
    if label not in scored.frame.columns:
        raise FunctionError(f"the table has no label column {label!r} to evaluate against")
    target = model_target(scored.frame[label], column=label, config=scored.config)
    names = scored.config.get("class_names")
    metrics = guard_metrics(
        table_metrics(
            target,
            scored.probabilities,
            threshold=threshold,
            class_names=[str(name) for name in names] if names else None,
        ),
        labels=target,
        min_rows=ctx.min_rows,
        what="the evaluation metrics",
    )
    outputs["metrics"].write_json(
        {"function": "evaluate", "model": scored.config["model"], "label_column": label, **metrics}
    )


def _image_metrics(ctx: Context) -> tuple[dict[str, Any], np.ndarray]:
    """Accuracy, per-class recall, confusion matrix and macro AUC of an image model on every
    labelled image of the other input slots (every split of a ``.npz``; zips of class folders)."""
    from teeflow.functions.builtins.image_predict import ImageModel
    from teeflow.functions.dl.images import load_images

    model = ImageModel(ctx.inputs["model"].read_bytes())
    slots = sorted(slot for slot in ctx.inputs if slot != "model")
    if not slots:
        raise FunctionError("evaluate needs a labelled image input besides the model")
    lookup = {name: index for index, name in enumerate(model.classes)}
    images, labels = [], []
    for slot in slots:
        loaded = load_images(
            ctx.inputs[slot].read_bytes(), what=f"input {slot!r}", transform=model.transform
        )
        unknown = sorted(set(loaded.class_names) - set(lookup))
        present = {
            loaded.class_names[i] for _, y in loaded.splits.values() for i in set(y.tolist())
        }
        if unknown and present & set(unknown):
            raise FunctionError(
                f"input {slot!r} has class(es) {sorted(present & set(unknown))} the model was "
                f"not trained on; it knows {model.classes}"
            )
        remap = np.array([lookup.get(name, -1) for name in loaded.class_names], dtype=np.int64)
        for x, y in loaded.splits.values():
            images.append(x)
            labels.append(remap[y])
    probabilities = model.probabilities(np.concatenate(images))
    truth = np.concatenate(labels)
    metrics = multiclass_metrics(truth, probabilities, class_names=model.classes)
    return {"function": "evaluate", "model": model.config["model"], **metrics}, truth
