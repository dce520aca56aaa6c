"""Registers the PaddlePaddle built-ins: image and tabular train / predict, evaluate.

The implementations import Paddle at top level, so this catalogue names them by dotted module;
listing the catalogue stays cheap. Entry and module share one declaration of the arguments
(functions/builtins/signatures.py).
"""

from __future__ import annotations

from teeflow.functions.builtins import signatures as sig
from teeflow.functions.outputs import MAX_METRICS_BYTES, OutputDeclaration
from teeflow.functions.registry import Builtin, register

_PACKAGE = "teeflow.functions.builtins"

_METRICS = OutputDeclaration("metrics", MAX_METRICS_BYTES)
_MODEL = OutputDeclaration("model", 512 << 20)
# A prediction row (id, probability, label) per input row: a few times the input at most.
_PREDICTIONS = OutputDeclaration("table", 64 << 10, scale=4.0)

register(
    Builtin(
        name="image-classify-train",
        summary="Train an image classifier (small CNN or ResNet-18) on every party's images.",
        module=f"{_PACKAGE}.image_train",
        inputs="one or more image datasets: MedMNIST .npz, or a zip of class-named folders of "
        "PNG/JPEG/DICOM",
        outputs=("model", "metrics"),
        declarations={"model": _MODEL, "metrics": _METRICS},
        signature=sig.IMAGE_TRAIN,
        min_inputs=1,
    )
)

register(
    Builtin(
        name="image-classify-predict",
        summary="Classify images with a model from image-classify-train.",
        module=f"{_PACKAGE}.image_predict",
        inputs="'model' (from image-classify-train) and 'images' (.npz or zip of images)",
        outputs=("predictions",),
        declarations={"predictions": _PREDICTIONS},
        signature=sig.IMAGE_PREDICT,
        min_inputs=2,
        max_inputs=2,
    )
)

register(
    Builtin(
        name="tabular-train",
        summary="Logistic regression, MLP or gradient-boosted trees on tables from several "
        "parties, joined inside the enclave (AUC, KS; 0/1 or multi-class labels).",
        module=f"{_PACKAGE}.tabular_train",
        inputs="one or more tables (CSV or Parquet): same columns (rows are pooled) or a shared "
        "id column (inner-joined)",
        outputs=("model", "metrics", "metrics_public"),
        declarations={"model": _MODEL, "metrics": _METRICS, "metrics_public": _METRICS},
        signature=sig.TABULAR_TRAIN,
        min_inputs=1,
    )
)

register(
    Builtin(
        name="tabular-predict",
        summary="Score tables with a model from tabular-train: id, probability, label.",
        module=f"{_PACKAGE}.tabular_predict",
        inputs="'model' (from tabular-train) and one or more tables, combined as in training",
        outputs=("predictions",),
        declarations={"predictions": _PREDICTIONS},
        signature=sig.TABULAR_PREDICT,
        min_inputs=2,
    )
)

register(
    Builtin(
        name="evaluate",
        summary="Metrics of a tabular-train model on labelled tables (AUC, KS, accuracy, "
        "confusion matrix) or of an image model on labelled images (per-class recall, macro AUC).",
        module=f"{_PACKAGE}.evaluate",
        inputs="'model' (from tabular-train or image-classify-train) and one or more labelled "
        "tables, or labelled images",
        outputs=("metrics",),
        declarations={"metrics": _METRICS},
        signature=sig.EVALUATE,
        min_inputs=2,
    )
)

register(
    Builtin(
        name="tabular-serve",
        summary="Online inference session: answers each requester's sealed rows with a "
        "tabular-train model loaded once.",
        module=f"{_PACKAGE}.tabular_serve",
        inputs="'model' (from tabular-train), and optionally tables the enclave holds and joins "
        "to each request's rows by the model's id column (e.g. a bureau's columns)",
        outputs=("usage",),
        declarations={"usage": _METRICS},
        signature=sig.TABULAR_SERVE,
        min_inputs=1,
        session=True,
    )
)

register(
    Builtin(
        name="image-serve",
        summary="Online inference session: classifies each requester's sealed images with an "
        "image-classify-train model loaded once.",
        module=f"{_PACKAGE}.image_serve",
        inputs="'model' (from image-classify-train) only",
        outputs=("usage",),
        declarations={"usage": _METRICS},
        signature=sig.IMAGE_SERVE,
        min_inputs=1,
        max_inputs=1,
        session=True,
    )
)
