"""Registers the PaddlePaddle built-ins: image and tabular train / predict, evaluate.

The implementations import Paddle at top level, so this catalogue names them by dotted module and
repeats their argument descriptions; listing the catalogue stays cheap, and a test keeps each
entry's argument names equal to its module's ``ARGUMENTS``.
"""

from __future__ import annotations

from teeflow.functions.outputs import MAX_METRICS_BYTES, OutputDeclaration
from teeflow.functions.registry import Builtin, register
from teeflow.functions.serving import SESSION_ARGUMENTS

_PACKAGE = "teeflow.functions.builtins"

_METRICS = OutputDeclaration("metrics", MAX_METRICS_BYTES)
_MODEL = OutputDeclaration("model", 512 << 20)
# A prediction row (id, probability, label) per input row: a few times the input at most.
_PREDICTIONS = OutputDeclaration("table", 64 << 10, scale=4.0)

_TRAIN_ARGS = {
    "epochs": "training epochs",
    "batch_size": "mini-batch size",
    "learning_rate": "Adam learning rate",
    "seed": "random seed for initialisation, shuffling and the held-out split (default 0)",
    "test_fraction": "held-out share for the test metrics (default 0.2)",
}

register(
    Builtin(
        name="image-classify-train",
        summary="Train an image classifier (small CNN or ResNet-18) on every party's images.",
        module=f"{_PACKAGE}.image_train",
        inputs="one or more image datasets: MedMNIST .npz, or a zip of class-named folders of "
        "PNG/JPEG/DICOM",
        outputs=("model", "metrics"),
        declarations={"model": _MODEL, "metrics": _METRICS},
        arguments={
            "model": "cnn (default) or resnet18",
            **_TRAIN_ARGS,
            "epochs": "training epochs (default 5)",
            "batch_size": "mini-batch size (default 64)",
            "learning_rate": "Adam learning rate (default 0.001)",
            "test_fraction": "held-out share for zips of folders, which have no split "
            "(default 0.2)",
            "image_size": "resize every image to this size, an int or [height, width] "
            "(default: keep; sizes must then agree)",
            "mean": "per-channel mean to normalise with, e.g. [0.5] (with std)",
            "std": "per-channel standard deviation to normalise with (with mean)",
            "augment": "flipped copies added to the training split: a list of hflip, vflip",
            "report_class_counts": "true: metrics list each input's image count per class",
            "dp": "train the cnn with DP-SGD: {epsilon, delta, max_grad_norm (default 1.0)}",
        },
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
        arguments={},
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
        arguments={
            "label_column": "the target column (required): 0/1, or 3 to 50 classes",
            "id_column": "the column that identifies a row and joins column-partitioned tables",
            "id_columns": "input slot -> its own id column name, where parties name it "
            "differently; the joined table and the model use id_column (or the first slot's "
            "name)",
            "partition": "auto (default), rows or columns",
            "positive_label": "label value of the positive class when the label is not 0/1",
            "model": "logistic (default), mlp, or gbdt (gradient-boosted trees, LightGBM)",
            "hidden": "mlp hidden layer sizes, e.g. [32] (default)",
            **_TRAIN_ARGS,
            "epochs": "training epochs (default 20)",
            "batch_size": "mini-batch size (default 32)",
            "learning_rate": "Adam learning rate (default 0.01); for gbdt the shrinkage "
            "(default 0.1)",
            "num_trees": "gbdt boosting rounds (default 100)",
            "num_leaves": "gbdt leaves per tree (default 31)",
            "threshold": "probability above which a row is predicted positive (default 0.5)",
            "dp": "train with DP-SGD: {epsilon, delta, max_grad_norm (default 1.0)}",
        },
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
        arguments={
            "threshold": "probability above which a row is labelled 1 (default: the model's)",
            "partition": "auto (default), rows or columns",
            "id_columns": "input slot -> its own id column name, where it differs from the model's",
        },
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
        arguments={
            "threshold": "probability above which a row counts as positive (default: the model's)",
            "partition": "auto (default), rows or columns",
            "id_columns": "input slot -> its own id column name, where it differs from the model's",
        },
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
        arguments={
            **SESSION_ARGUMENTS,
            "threshold": "probability above which a row is labelled 1 (default: the model's)",
            "id_columns": "input slot (or 'request', for the requests' rows) -> its own id "
            "column name, where it differs from the model's",
        },
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
        arguments=dict(SESSION_ARGUMENTS),
        min_inputs=1,
        max_inputs=1,
        session=True,
    )
)
