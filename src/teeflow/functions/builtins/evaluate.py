"""``evaluate``: a ``tabular-train`` model's metrics on new labelled tables: AUC, KS, accuracy and
confusion matrix for a 0/1 model; accuracy, per-class recall, confusion matrix and one-vs-rest
macro AUC for a multi-class one.

Inputs: ``model`` and one or more labelled tables (every other slot, combined as in training).
Output: ``metrics`` (JSON aggregates only; no row values).
"""

from __future__ import annotations

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.args import check_known, float_arg, output_slots
from teeflow.functions.dl.metrics import table_metrics
from teeflow.functions.dl.scoring import model_target, score_inputs

ARGUMENTS = {
    "threshold": "probability above which a row counts as positive (default: the model's, 0.5)",
    "partition": "auto (default), rows or columns: how several tables combine",
    "id_columns": "input slot -> its own id column name, where it differs from the model's",
}


def run(ctx: Context) -> None:
    check_known(ctx, ARGUMENTS)
    outputs = output_slots(ctx, allowed=("metrics",), required_any=("metrics",))
    scored = score_inputs(ctx)
    threshold = float_arg(ctx, "threshold", float(scored.config["threshold"]), low=0.0, high=1.0)
    label = str(scored.config["label_column"])
    if label not in scored.frame.columns:
        raise FunctionError(f"the table has no label column {label!r} to evaluate against")
    target = model_target(scored.frame[label], column=label, config=scored.config)
    names = scored.config.get("class_names")
    metrics = table_metrics(
        target,
        scored.probabilities,
        threshold=threshold,
        class_names=[str(name) for name in names] if names else None,
    )
    outputs["metrics"].write_json(
        {"function": "evaluate", "model": scored.config["model"], "label_column": label, **metrics}
    )
