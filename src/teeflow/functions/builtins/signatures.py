"""The typed declarations (functions/declarations.py) of every built-in's arguments and inputs.

The single source of each built-in's argument names, ranges, choices and defaults: each module
checks its arguments' names against its declaration and reads their defaults and bounds from it
(``check_known``, ``declared_int`` and the like in functions/dl/args.py); enclave/session_limits.py
enforces the session arguments.
"""

from __future__ import annotations

from teeflow.functions.declarations import Argument, Column, InputSlot, Signature

__all__ = [
    "EVALUATE",
    "IMAGE_PREDICT",
    "IMAGE_SERVE",
    "IMAGE_TRAIN",
    "JOIN_SUM",
    "PSI",
    "TABULAR_PREDICT",
    "TABULAR_SERVE",
    "TABULAR_TRAIN",
]

TABLE_FORMATS = ("csv", "parquet")
IMAGE_FORMATS = ("npz", "zip of class folders (png, jpeg, dicom)")
MODEL_FORMATS = ("teeflow model",)
_MAX_SEED = 2**31 - 1

_ID_COLUMN_SHARED = Argument(
    "id_column", "str", "name of the id column at every party", default="id"
)
_ID_COLUMNS = Argument(
    "id_columns",
    "mapping",
    "input slot -> its own id column name, where parties name it differently "
    '(e.g. {"bank": "customer_no"}); other slots use id_column',
)
_PARTITION = Argument(
    "partition",
    "enum",
    "rows: pool the tables' rows; columns: inner-join them on the id column; auto: pick by schema",
    default="auto",
    choices=("auto", "rows", "columns"),
)
_THRESHOLD_MODEL = Argument(
    "threshold",
    "float",
    "probability above which a row counts as positive (default: the model's)",
    low=0.0,
    high=1.0,
)
_DP = Argument(
    "dp",
    "object",
    "train with DP-SGD: epsilon (1e-3..100), delta (0..0.1), max_grad_norm (default 1.0)",
    keys=(("epsilon", 1e-3, 100.0), ("delta", 0.0, 0.1), ("max_grad_norm", 1e-6, 1e6)),
)
_SEED = Argument(
    "seed",
    "int",
    "random seed for initialisation, shuffling and the held-out split",
    default=0,
    low=0,
    high=_MAX_SEED,
)
_SESSION = (
    Argument("requesters", "str_list", "participants who may send requests", required=True),
    Argument(
        "max_rows_per_request",
        "int",
        "rows one request may hold",
        default=100,
        low=1,
        high=1e5,
        text_numbers=False,
    ),
    Argument(
        "max_rows",
        "int",
        "rows the session answers in total before it ends",
        default=10_000,
        low=1,
        high=1e9,
        text_numbers=False,
    ),
    Argument(
        "max_requests",
        "int",
        "requests the session answers before it ends",
        default=1_000,
        low=1,
        high=1e9,
        text_numbers=False,
    ),
    Argument(
        "max_requests_per_minute",
        "int",
        "requests admitted per minute, all requesters together",
        default=60,
        low=1,
        high=1e6,
        text_numbers=False,
    ),
    Argument(
        "max_seconds",
        "float",
        "seconds the session serves before it ends (at most 30 days)",
        default=86_400,
        low=1,
        high=30 * 86_400,
        text_numbers=False,
    ),
    Argument(
        "decimals",
        "int",
        "round every probability in an answer to this many decimals (default: full precision)",
        low=0,
        high=12,
        text_numbers=False,
        nullable=True,
    ),
)
_MODEL_SLOT = InputSlot("model", "model", MODEL_FORMATS, "a model from the matching -train")
_ID_COLUMN = Column("the id column", "id_column", "id", per_slot="id_columns")

PSI = Signature(
    arguments=(_ID_COLUMN_SHARED, _ID_COLUMNS),
    inputs=(
        InputSlot(
            "*",
            "ids",
            ("csv", "one id per line"),
            "a table with the id column, or a plain list of ids",
            columns=(
                Column(
                    "the id column",
                    "id_column",
                    "id",
                    per_slot="id_columns",
                    unless_single_column=True,
                ),
            ),
        ),
    ),
)

JOIN_SUM = Signature(
    arguments=(
        _ID_COLUMN_SHARED,
        _ID_COLUMNS,
        Argument("amount_column", "str", "name of the amount column", default="amount"),
    ),
    inputs=(
        InputSlot(
            "*",
            "table",
            ("csv",),
            "a table of ids and amounts",
            columns=(_ID_COLUMN, Column("the amount column", "amount_column", "amount")),
        ),
    ),
)

IMAGE_TRAIN = Signature(
    arguments=(
        Argument("model", "enum", "network to train", default="cnn", choices=("cnn", "resnet18")),
        Argument("epochs", "int", "training epochs", default=5, low=1, high=1000),
        Argument("batch_size", "int", "mini-batch size", default=64, low=1, high=65536),
        Argument("learning_rate", "float", "Adam learning rate", default=0.001, low=1e-7, high=10),
        _SEED,
        Argument(
            "test_fraction",
            "float",
            "held-out share for zips of folders, which have no split",
            default=0.2,
            low=0.01,
            high=0.9,
        ),
        Argument(
            "image_size",
            "size",
            "resize every image to this size (default: keep; sizes must then agree)",
            low=4,
            high=1024,
        ),
        Argument(
            "mean", "float_list", "per-channel mean to normalise with (with std)", max_items=4
        ),
        Argument(
            "std",
            "float_list",
            "per-channel standard deviation to normalise with (with mean)",
            max_items=4,
        ),
        Argument(
            "augment",
            "enum_list",
            "flipped copies added to the training split",
            choices=("hflip", "vflip"),
        ),
        Argument(
            "report_class_counts",
            "bool",
            "metrics list each input's image count per class",
            default=False,
        ),
        _DP,
    ),
    inputs=(InputSlot("*", "images", IMAGE_FORMATS, "labelled images, one folder per class"),),
    rules=("mean and std go together, one value per channel each; std is positive",),
)

IMAGE_PREDICT = Signature(
    inputs=(
        _MODEL_SLOT,
        InputSlot("images", "images", IMAGE_FORMATS, "the images to classify"),
    ),
)

TABULAR_TRAIN = Signature(
    arguments=(
        Argument(
            "label_column", "str", "the target column: 0/1, or 3 to 50 classes", required=True
        ),
        Argument(
            "id_column",
            "str",
            "the column that identifies a row and joins column-partitioned tables",
        ),
        Argument(
            "id_columns",
            "mapping",
            "input slot -> its own id column name, where parties name it differently; the "
            "joined table and the model use id_column (or the first slot's name)",
        ),
        _PARTITION,
        Argument(
            "positive_label", "scalar", "label value of the positive class when it is not 0/1"
        ),
        Argument(
            "model",
            "enum",
            "logistic regression, MLP, or gradient-boosted trees (LightGBM)",
            default="logistic",
            choices=("logistic", "mlp", "gbdt"),
        ),
        Argument("hidden", "int_list", "mlp hidden layer sizes", default=[32], low=1, high=4096),
        Argument("epochs", "int", "training epochs", default=20, low=1, high=10000),
        Argument("batch_size", "int", "mini-batch size", default=32, low=1, high=1 << 20),
        Argument(
            "learning_rate",
            "float",
            "Adam learning rate (default 0.01); for gbdt the shrinkage (default 0.1)",
            low=1e-7,
            high=10,
        ),
        Argument("num_trees", "int", "gbdt boosting rounds", default=100, low=1, high=5000),
        Argument("num_leaves", "int", "gbdt leaves per tree", default=31, low=2, high=1024),
        _SEED,
        Argument(
            "test_fraction",
            "float",
            "held-out share for the test metrics",
            default=0.2,
            low=0.05,
            high=0.9,
        ),
        Argument(
            "threshold",
            "float",
            "probability above which a row is predicted positive",
            default=0.5,
            low=0.0,
            high=1.0,
        ),
        _DP,
    ),
    inputs=(
        InputSlot(
            "*",
            "table",
            TABLE_FORMATS,
            "a table; same columns at every party (rows pooled) or a shared id column (joined)",
            columns=(
                Column("the label column", "label_column", when="pooled"),
                Column("the id column", "id_column", per_slot="id_columns", when="named"),
            ),
        ),
    ),
)

_SCORING_ARGS = (
    _THRESHOLD_MODEL,
    _PARTITION,
    Argument(
        "id_columns",
        "mapping",
        "input slot -> its own id column name, where it differs from the model's",
    ),
)
_SCORED_TABLES = InputSlot(
    "*", "table", TABLE_FORMATS, "tables with the model's columns, combined as in training"
)

TABULAR_PREDICT = Signature(arguments=_SCORING_ARGS, inputs=(_MODEL_SLOT, _SCORED_TABLES))

EVALUATE = Signature(
    arguments=_SCORING_ARGS,
    inputs=(
        InputSlot("model", "model", MODEL_FORMATS, "a model from tabular- or image-classify-train"),
        InputSlot(
            "*",
            "any",
            (*TABLE_FORMATS, *IMAGE_FORMATS),
            "labelled tables (with the model's columns and label) or labelled images",
        ),
    ),
)

TABULAR_SERVE = Signature(
    arguments=(
        *_SESSION,
        _THRESHOLD_MODEL,
        Argument(
            "id_columns",
            "mapping",
            "input slot (or 'request', for the requests' rows) -> its own id column name, "
            "where it differs from the model's",
            extra_keys=("request",),
        ),
    ),
    inputs=(
        _MODEL_SLOT,
        InputSlot(
            "*",
            "table",
            TABLE_FORMATS,
            "tables the enclave holds and joins to each request's rows by the model's id column",
        ),
    ),
)

IMAGE_SERVE = Signature(arguments=_SESSION, inputs=(_MODEL_SLOT,))
