"""``tabular-train``: logistic regression or an MLP on tables from several parties, combined inside.

Inputs: every slot is a table (CSV or Parquet). Row-partitioned tables are concatenated;
column-partitioned ones are inner-joined on ``id_column``. Outputs (each optional, at least one):
``model`` (weights + preprocessing), ``metrics`` (AUC, KS, accuracy and confusion matrix of the
held-out ``test`` split and of the ``train`` split, per-epoch loss, sizes, which columns each
party contributed) and ``metrics_public`` (AUC, KS and accuracy only, for a party that must not
receive the model). No output carries a row's values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.signatures import TABULAR_TRAIN
from teeflow.functions.dl.args import (
    check_known,
    declared_choice,
    declared_float,
    declared_int,
    declared_int_list,
    output_slots,
    str_arg,
)
from teeflow.functions.dl.dp import dp_settings_arg, fit_private
from teeflow.functions.dl.gbdt import BOOSTER_MEMBER, feature_importance, train_booster
from teeflow.functions.dl.metrics import table_metrics
from teeflow.functions.dl.modelfile import ModelBlob
from teeflow.functions.dl.networks import build_tabular_model
from teeflow.functions.dl.scoring import TabularModel, class_target
from teeflow.functions.dl.state import run_fingerprint, tensor_arrays
from teeflow.functions.dl.tables import (
    Preprocessor,
    combine_tables,
    read_tables,
    split_rows,
    with_common_id,
)
from teeflow.functions.dl.training import TrainConfig, fit, thinned_history
from teeflow.functions.ids import id_columns_arg
from teeflow.functions.thresholds import guard_metrics

OUTPUTS = ("model", "metrics", "metrics_public")
GBDT = "gbdt"
_MAX_CATEGORIES = 100


def run(ctx: Context) -> None:
    check_known(ctx, TABULAR_TRAIN)
    outputs = output_slots(ctx, allowed=OUTPUTS, required_any=OUTPUTS)
    if not ctx.inputs:
        raise FunctionError("tabular-train needs at least one table input")
    label = str_arg(ctx, "label_column")
    if not label:
        raise FunctionError("argument 'label_column' is required; name the target column")
    id_column = str_arg(ctx, "id_column")
    partition = declared_choice(ctx, TABULAR_TRAIN, "partition")
    positive = ctx.arg("positive_label")
    name = declared_choice(ctx, TABULAR_TRAIN, "model")
    hidden = declared_int_list(ctx, TABULAR_TRAIN, "hidden") if name == "mlp" else []
    epochs = declared_int(ctx, TABULAR_TRAIN, "epochs")
    batch_size = declared_int(ctx, TABULAR_TRAIN, "batch_size")
    rate = 0.1 if name == GBDT else 0.01  # the declaration leaves it to the model kind
    learning_rate = declared_float(ctx, TABULAR_TRAIN, "learning_rate", default=rate)
    num_trees = declared_int(ctx, TABULAR_TRAIN, "num_trees")
    num_leaves = declared_int(ctx, TABULAR_TRAIN, "num_leaves")
    seed = declared_int(ctx, TABULAR_TRAIN, "seed")
    test_fraction = declared_float(ctx, TABULAR_TRAIN, "test_fraction")
    threshold = declared_float(ctx, TABULAR_TRAIN, "threshold")
    dp = dp_settings_arg(ctx)
    if dp is not None and name == GBDT:
        raise FunctionError("DP training supports the models logistic and mlp, not gbdt")

    slots = sorted(ctx.inputs)
    tables, id_column = with_common_id(
        read_tables(ctx.inputs, slots),
        id_column=id_column,
        id_columns=id_columns_arg(ctx, slots=slots),
    )
    combined = combine_tables(tables, partition=partition, id_column=id_column)
    frame = combined.frame
    if label not in frame.columns:
        raise FunctionError(f"label column {label!r} is in none of the inputs")
    id_column = combined.id_column
    target, class_names = class_target(
        frame[label], column=label, positive_label=None if positive is None else str(positive)
    )
    feature_columns = [c for c in frame.columns if c not in (label, id_column)]
    if not feature_columns:
        raise FunctionError("the inputs hold no feature columns besides the label and id")
    if min(np.bincount(target, minlength=len(class_names or [0, 1]))) < 2:
        raise FunctionError("every label class needs at least two rows")
    train_rows, test_rows = split_rows(target, test_fraction=test_fraction, seed=seed)
    train_frame = frame.iloc[train_rows]
    preprocessor = Preprocessor.fit(train_frame, feature_columns)
    for column, categories in preprocessor.categorical.items():
        if len(categories) > max(_MAX_CATEGORIES, len(train_rows) // 2):
            raise FunctionError(
                f"column {column!r} has too many distinct text values to one-hot encode; if it "
                "identifies rows, pass it as 'id_column'"
            )
    x_train = preprocessor.transform(train_frame)
    x_test = preprocessor.transform(frame.iloc[test_rows])
    net_config: dict[str, Any] = {
        "kind": "tabular",
        "model": name,
        "hidden": hidden,
        "in_features": preprocessor.width,
        "preprocessing": preprocessor.to_dict(),
        "label_column": label,
        "id_column": id_column,
        "positive_label": None if positive is None else str(positive),
        "threshold": threshold,
    }
    if name == GBDT:
        net_config["learning_rate"] = learning_rate
    if class_names is not None:
        net_config["class_names"] = class_names
    if name == GBDT:
        net_config.update(num_trees=num_trees, num_leaves=num_leaves)
        blob, history = _train_trees(ctx, net_config, x_train, target[train_rows], seed=seed)
    else:
        config = TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            binary=class_names is None,
            fingerprint=run_fingerprint(ctx, slots, net_config),
        )
        fit_args: dict[str, Any] = {
            "build_model": lambda: build_tabular_model(net_config),
            "features": x_train,
            "labels": target[train_rows],
            "config": config,
        }
        if dp is None:
            result = fit(ctx, **fit_args)
            history = {"epochs": thinned_history(result.history)}
        else:  # training-set metrics are not private: the DP run reports none
            result, plan = fit_private(ctx, dp=dp, **fit_args)
            history = {"epochs": thinned_history(result.history), "privacy": plan.describe()}
        blob = ModelBlob(config=net_config, weights=tensor_arrays(result.model.state_dict()))
    # Scored with the model as saved and loaded back: exactly what predict and evaluate will use.
    saved = blob.to_bytes()
    model = TabularModel.from_bytes(saved)
    test, train = (
        guard_metrics(
            table_metrics(
                target[rows], model.probabilities(x), threshold=threshold, class_names=class_names
            ),
            labels=target[rows],
            min_rows=ctx.min_rows,
            what=f"the {part} metrics",
        )
        for part, rows, x in (("test", test_rows, x_test), ("train", train_rows, x_train))
    )
    if dp is not None:
        train = {"withheld": "training-set metrics are not differentially private"}
    if name == GBDT:
        history["feature_importance"] = feature_importance(
            model.network, preprocessor.encoded_columns
        )
    public = {key: test[key] for key in ("auc", "ks", "accuracy", "withheld") if key in test}
    if "model" in outputs:
        outputs["model"].write(saved)
    if "metrics" in outputs:
        outputs["metrics"].write_json(
            {
                "function": "tabular-train",
                "model": name,
                **public,
                "test": test,
                "train": train,
                **history,
                "n_train": len(train_rows),
                "n_test": len(test_rows),
                "n_features_encoded": preprocessor.width,
                "partition": combined.partition,
                "rows_per_input": {slot: len(tables[slot]) for slot in slots},
                "columns_per_input": combined.contributions,
                "label_column": label,
                "id_column": id_column,
            }
        )
    if "metrics_public" in outputs:
        outputs["metrics_public"].write_json(public)


def _train_trees(
    ctx: Context,
    config: dict[str, Any],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
) -> tuple[ModelBlob, dict[str, Any]]:
    """LightGBM trees for ``config`` (no checkpoints: boosting a table takes seconds)."""
    booster = train_booster(
        ctx,
        features,
        labels,
        classes=len(config.get("class_names") or [0, 1]),
        seed=seed,
        num_trees=int(config["num_trees"]),
        num_leaves=int(config["num_leaves"]),
        learning_rate=float(config["learning_rate"]),
    )
    text: str = booster.model_to_string()
    blob = ModelBlob(config=config, weights={}, extra={BOOSTER_MEMBER: text.encode("utf-8")})
    return blob, {"trees": int(config["num_trees"])}
