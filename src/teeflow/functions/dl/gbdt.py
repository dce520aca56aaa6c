"""Gradient-boosted decision trees on LightGBM for ``tabular-train`` (``model: gbdt``).

The trees train on the same encoded features as the networks (so the same preprocessing, checks
and model file serve both) and are saved in LightGBM's text format, which LightGBM parses without
executing anything (never a pickle): ``booster.txt`` in the model zip. Training is deterministic
for a seed: one thread, ``deterministic`` and ``force_row_wise`` (LightGBM's documented switches
for reproducible results), no bagging or feature sub-sampling. See docs/decisions for why
LightGBM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError

__all__ = ["BOOSTER_MEMBER", "feature_importance", "load_booster", "raw_scores", "train_booster"]

BOOSTER_MEMBER = "booster.txt"


def train_booster(
    ctx: Context,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    classes: int,
    seed: int,
    num_trees: int,
    num_leaves: int,
    learning_rate: float,
) -> Any:
    """Train ``num_trees`` boosting rounds; the ``lightgbm.Booster`` (``model_to_string()`` is
    what a model file keeps).

    ``classes`` is 2 for 0/1 labels (one raw score, binary log-loss), else the class count
    (softmax over one raw score per class). Reports ``ctx.progress`` every tenth round.
    """
    import lightgbm

    params: dict[str, Any] = {
        "objective": "binary" if classes == 2 else "multiclass",
        "num_leaves": num_leaves,
        "learning_rate": learning_rate,
        "min_data_in_leaf": max(1, min(20, len(labels) // 10)),
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    if classes > 2:
        params["num_class"] = classes

    def report(env: Any) -> None:
        done = env.iteration + 1
        if done % 10 == 0 or done == num_trees:
            ctx.progress(trees=done, of=num_trees)

    booster = lightgbm.train(
        params,
        lightgbm.Dataset(features, label=labels, free_raw_data=True),
        num_boost_round=num_trees,
        callbacks=[report],
    )
    return booster


def load_booster(text: str, *, in_features: int, outputs: int) -> Any:
    """A LightGBM booster from its text; FunctionError when it does not fit the model's config."""
    import lightgbm

    try:
        booster = lightgbm.Booster(model_str=text)
    except lightgbm.basic.LightGBMError as exc:
        raise FunctionError("the model's trees are not a valid LightGBM model") from exc
    if booster.num_feature() != in_features or booster.num_model_per_iteration() != outputs:
        raise FunctionError("the model's trees do not match its declared features and classes")
    return booster


def raw_scores(booster: Any, features: np.ndarray) -> np.ndarray:
    """(rows, outputs) raw scores (log-odds, or per-class scores before softmax), float64."""
    scores = np.asarray(booster.predict(features, raw_score=True), dtype=np.float64)
    return scores.reshape(len(features), -1)


def feature_importance(booster: Any, owners: list[str]) -> list[dict[str, Any]]:
    """Total split gain per table column (a text column's one-hot block summed), as a share of
    the whole, largest first: ``[{"column": name, "gain_share": 0.41}, ...]``. ``owners[i]`` is
    the table column of encoded feature ``i``."""
    gains = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    per_column: dict[str, float] = {}
    for column, gain in zip(owners, gains, strict=True):
        per_column[column] = per_column.get(column, 0.0) + float(gain)
    total = sum(per_column.values()) or 1.0
    ranked = sorted(per_column.items(), key=lambda item: (-item[1], item[0]))
    return [{"column": column, "gain_share": round(gain / total, 6)} for column, gain in ranked]
