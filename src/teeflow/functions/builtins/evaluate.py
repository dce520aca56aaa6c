"""``evaluate``: a ``tabular-train`` model's AUC, KS, accuracy and confusion matrix on new tables.

Inputs: ``model`` and one or more labelled tables (every other slot, combined as in training).
Output: ``metrics`` (JSON aggregates only; no row values).
"""

from __future__ import annotations

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.args import check_known, float_arg, output_slots
from teeflow.functions.dl.metrics import binary_metrics
from teeflow.functions.dl.scoring import binary_target, score_inputs

ARGUMENTS = {
    "threshold": "probability above which a row counts as positive (default: the model's, 0.5)",
    "partition": "auto (default), rows or columns: how several tables combine",
}


def run(ctx: Context) -> None:
    check_known(ctx, ARGUMENTS)
    outputs = output_slots(ctx, allowed=("metrics",), required_any=("metrics",))
    scored = score_inputs(ctx)
    threshold = float_arg(ctx, "threshold", float(scored.config["threshold"]), low=0.0, high=1.0)
    label = str(scored.config["label_column"])
    if label not in scored.frame.columns:
        raise FunctionError(f"the table has no label column {label!r} to evaluate against")
    target = binary_target(
        scored.frame[label], column=label, positive_label=scored.config.get("positive_label")
    )
    metrics = binary_metrics(target, scored.probability, threshold=threshold)
    outputs["metrics"].write_json(
        {"function": "evaluate", "model": scored.config["model"], "label_column": label, **metrics}
    )
