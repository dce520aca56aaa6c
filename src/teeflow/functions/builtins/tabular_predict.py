"""``tabular-predict``: score tables with a ``tabular-train`` model.

Inputs: ``model`` and one or more tables (every other slot; column-partitioned tables are joined on
the model's id column as in training). Output: ``predictions``, a CSV with the id column (or
``row`` when the table has none), then for a 0/1 model ``probability`` of the positive class and
the 0/1 ``label`` at the threshold (the model's, unless the ``threshold`` argument overrides it),
for a multi-class model the ``predicted`` class and one ``p_<class>`` column per class.
"""

from __future__ import annotations

import pandas as pd

from teeflow.functions.api import Context
from teeflow.functions.dl.args import check_known, float_arg, output_slots
from teeflow.functions.dl.scoring import prediction_columns, score_inputs

ARGUMENTS = {
    "threshold": "probability above which a row is labelled 1 (default: the model's, 0.5)",
    "partition": "auto (default), rows or columns: how several tables combine",
    "id_columns": "input slot -> its own id column name, where it differs from the model's",
}


def run(ctx: Context) -> None:
    check_known(ctx, ARGUMENTS)
    outputs = output_slots(ctx, allowed=("predictions",), required_any=("predictions",))
    scored = score_inputs(ctx)
    threshold = float_arg(ctx, "threshold", float(scored.config["threshold"]), low=0.0, high=1.0)
    id_column = scored.config.get("id_column")
    if id_column and id_column in scored.frame.columns:
        ids = scored.frame[id_column].to_numpy()
        key = str(id_column)
    else:
        ids, key = range(len(scored.frame)), "row"
    names = scored.config.get("class_names")
    table = pd.DataFrame(
        prediction_columns(
            ids,
            scored.probabilities if names else scored.probability,
            id_name=key,
            threshold=threshold,
            class_names=[str(name) for name in names] if names else None,
        )
    )
    outputs["predictions"].write(table.to_csv(index=False).encode("utf-8"))
