"""``image-classify-train``: train an image classifier on every input slot's images, pooled.

Inputs: one or more image datasets (MedMNIST ``.npz``, or a zip of class-named folders of
PNG/JPEG/DICOM), one per party. Outputs: ``model`` (a teeflow model blob with a Paddle inference
export) and ``metrics`` (per-epoch loss/accuracy and test-split accuracy, confusion matrix,
per-class recall and AUC; aggregates only).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.signatures import IMAGE_TRAIN
from teeflow.functions.dl.args import (
    check_known,
    declared_choice,
    declared_float,
    declared_int,
    output_slots,
)
from teeflow.functions.dl.dp import dp_settings_arg, fit_private
from teeflow.functions.dl.images import ImageSet, load_images, split_holdout
from teeflow.functions.dl.metrics import multiclass_metrics, softmax
from teeflow.functions.dl.modelfile import ModelBlob
from teeflow.functions.dl.networks import build_image_model
from teeflow.functions.dl.state import run_fingerprint, tensor_arrays
from teeflow.functions.dl.training import TrainConfig, fit, predict_logits, thinned_history
from teeflow.functions.dl.transforms import augment, augment_arg, transform_args
from teeflow.functions.thresholds import guard_metrics, withheld


def class_counts(sets: list[ImageSet], slots: list[str]) -> dict[str, dict[str, int]]:
    """Per input slot, its image count per class name (every split together)."""
    counts: dict[str, dict[str, int]] = {}
    for slot, item in zip(slots, sets, strict=True):
        labels = np.concatenate([labels for _, labels in item.splits.values()])
        tally = np.bincount(labels, minlength=len(item.class_names))
        counts[slot] = {name: int(tally[i]) for i, name in enumerate(item.class_names)}
    return counts


def check_classes(counts: dict[str, dict[str, int]]) -> None:
    """Refuse, before training, class folders spelt differently across inputs (case, spaces,
    ``-``/``_``) and a class some input has no image of; the message names classes and slots."""
    spellings: dict[str, dict[str, list[str]]] = {}
    for slot, tally in counts.items():
        for name, count in tally.items():
            if count:
                key = re.sub(r"[\s_-]+", "", name.casefold())
                spellings.setdefault(key, {}).setdefault(name, []).append(slot)
    for variants in spellings.values():
        if len(variants) > 1:
            listed = "; ".join(
                f"{name!r} in {', '.join(s)}" for name, s in sorted(variants.items())
            )
            raise FunctionError(
                f"class folders are spelt differently across inputs ({listed}); give the class "
                "the same folder name at every party"
            )
    every = {name for tally in counts.values() for name, count in tally.items() if count}
    for slot, tally in counts.items():
        missing = sorted(every - {name for name, count in tally.items() if count})
        if missing:
            raise FunctionError(
                f"input {slot!r} has no images of class(es) {missing}, which other inputs have; "
                "every party needs images of every class"
            )


def _class_order(names: set[str]) -> list[str]:
    return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))


def _pool(
    sets: list[ImageSet], *, test_fraction: float, seed: int
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Concatenate every input's train / val / test split, labels remapped to shared classes."""
    classes = _class_order({name for item in sets for name in item.class_names})
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for item in sets:
        remap = np.array([classes.index(name) for name in item.class_names], dtype=np.int64)
        splits = dict(item.splits)
        if "all" in splits:
            splits["train"], splits["test"] = split_holdout(
                *splits.pop("all"), fraction=test_fraction, seed=seed
            )
        for split, (images, labels) in splits.items():
            parts[split].append((images, remap[labels]))
    shapes = {images.shape[1:] for chunks in parts.values() for images, _ in chunks}
    if len(shapes) != 1:
        raise FunctionError(
            f"the inputs' images differ in shape (channels, height, width): {sorted(shapes)}"
        )
    pooled = {
        split: (np.concatenate([x for x, _ in chunks]), np.concatenate([y for _, y in chunks]))
        for split, chunks in parts.items()
        if chunks
    }
    if "test" not in pooled:
        raise FunctionError("no input has a test split (test_images / test_labels)")
    return pooled, classes


def run(ctx: Context) -> None:
    check_known(ctx, IMAGE_TRAIN)
    outputs = output_slots(ctx, allowed=("model", "metrics"), required_any=("model", "metrics"))
    if not ctx.inputs:
        raise FunctionError("image-classify-train needs at least one image dataset input")
    name = declared_choice(ctx, IMAGE_TRAIN, "model")
    epochs = declared_int(ctx, IMAGE_TRAIN, "epochs")
    batch_size = declared_int(ctx, IMAGE_TRAIN, "batch_size")
    learning_rate = declared_float(ctx, IMAGE_TRAIN, "learning_rate")
    seed = declared_int(ctx, IMAGE_TRAIN, "seed")
    test_fraction = declared_float(ctx, IMAGE_TRAIN, "test_fraction")
    dp = dp_settings_arg(ctx)
    if dp is not None and name != "cnn":
        raise FunctionError("DP training supports the model 'cnn' only (GroupNorm, no BatchNorm)")

    transform = transform_args(ctx)
    augmentations = augment_arg(ctx)
    if dp is not None and augmentations:
        # A flipped copy is a second row of the same patient: the guarantee would cover pairs.
        raise FunctionError("DP training takes no 'augment': each image must appear once")
    report_counts = ctx.arg("report_class_counts", False)
    if not isinstance(report_counts, bool):
        raise FunctionError("argument 'report_class_counts' must be true or false")

    slots = sorted(ctx.inputs)
    sets = [
        load_images(ctx.inputs[slot].read_bytes(), what=f"input {slot!r}", transform=transform)
        for slot in slots
    ]
    counts = class_counts(sets, slots)
    if len(slots) > 1:
        check_classes(counts)
    data, classes = _pool(sets, test_fraction=test_fraction, seed=seed)
    data = {split: (transform.normalise(x), y) for split, (x, y) in data.items()}
    data["train"] = augment(*data["train"], augmentations)
    if len(classes) < 2:
        raise FunctionError("the images cover only one class; a classifier needs at least two")
    train_x, train_y = data["train"]
    channels, height, width = (int(size) for size in train_x.shape[1:])
    net_config: dict[str, Any] = {
        "kind": "image",
        "model": name,
        "channels": channels,
        "num_classes": len(classes),
        "class_names": classes,
        "image_size": [height, width],
        "transform": transform.to_config(),
        **({"norm": "group"} if dp is not None else {}),
    }
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        binary=False,
        fingerprint=run_fingerprint(ctx, slots, net_config),
    )
    fit_args: dict[str, Any] = {
        "build_model": lambda: build_image_model(net_config),
        "features": train_x,
        "labels": train_y,
        "config": config,
    }
    privacy: dict[str, Any] | None = None
    if dp is None:
        result = fit(ctx, **fit_args)
    else:
        result, plan = fit_private(ctx, dp=dp, **fit_args)
        privacy = plan.describe()

    test_x, test_y = data["test"]
    metrics: dict[str, Any] = {
        "function": "image-classify-train",
        "model": name,
        "epochs": thinned_history(result.history),
        "n_train": len(train_x),
        "n_test": len(test_x),
        "test": guard_metrics(
            multiclass_metrics(
                test_y, softmax(predict_logits(result.model, test_x)), class_names=classes
            ),
            labels=test_y,
            min_rows=ctx.min_rows,
            what="the test metrics",
        ),
    }
    if "val" in data and len(data["val"][1]) >= ctx.min_rows:
        val_x, val_y = data["val"]
        val_predicted = predict_logits(result.model, val_x).argmax(axis=1)
        metrics["val_accuracy"] = round(float((val_predicted == val_y).mean()), 6)
    metrics["test_accuracy"] = metrics["test"].get("accuracy")
    if report_counts:
        small = [n for tally in counts.values() for n in tally.values() if 0 < n < ctx.min_rows]
        metrics["class_counts_per_input"] = (
            withheld("a class count", min(small), ctx.min_rows) if small else counts
        )
    if privacy:
        metrics["privacy"] = privacy

    if "model" in outputs:
        extra = ModelBlob.export_inference(
            result.model, input_shape=[None, channels, height, width], scratch=ctx.scratch
        )
        blob = ModelBlob(
            config=net_config, weights=tensor_arrays(result.model.state_dict()), extra=extra
        )
        outputs["model"].write(blob.to_bytes())
    if "metrics" in outputs:
        outputs["metrics"].write_json(metrics)
