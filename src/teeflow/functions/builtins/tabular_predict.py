"""``tabular-predict``: score tables with a ``tabular-train`` model.

Inputs: ``model`` and one or more tables (every other slot; column-partitioned tables are joined on
the model's id column as in training). Output: ``predictions``, a CSV with the id column (or
``row`` when the table has none), then for a 0/1 model ``probability`` of the positive class and
the 0/1 ``label`` at the threshold (the model's, unless the ``threshold`` argument overrides it),
for a multi-class model the ``predicted`` class and one ``p_<class>`` column per class.

A single CSV table is scored as a stream (functions/dl/stream_scoring.py): decrypted, parsed,
scored and written a block of rows at a time, with the same bytes out as the whole-table path,
which every other case (several tables, Parquet, ``id_columns``) takes.
"""

from __future__ import annotations

import pandas as pd

from teeflow.functions.api import Context, OutputData
from teeflow.functions.builtins.signatures import TABULAR_PREDICT
from teeflow.functions.dl.args import check_known, declared_float, output_slots
from teeflow.functions.dl.scoring import TabularModel, prediction_columns, score_inputs
from teeflow.functions.dl.stream_scoring import NotStreamable, score_csv_stream


def run(ctx: Context, *, stream: bool = True) -> None:
    """Write the predictions; ``stream=False`` forces the whole-table path (the reference the
    streamed output equals byte for byte)."""
    check_known(ctx, TABULAR_PREDICT)
    outputs = output_slots(ctx, allowed=("predictions",), required_any=("predictions",))
    if stream and _streamed(ctx, outputs["predictions"]):
        return
    scored = score_inputs(ctx)
    threshold = declared_float(
        ctx, TABULAR_PREDICT, "threshold", default=float(scored.config["threshold"])
    )
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


def _streamed(ctx: Context, out: OutputData) -> bool:
    """Score the one CSV table as a stream into ``out``; False (nothing written) when the task
    is not a single CSV table, or its column types need the whole-table path."""
    tables = [slot for slot in ctx.inputs if slot != "model"]
    if "model" not in ctx.inputs or len(tables) != 1 or ctx.arg("id_columns"):
        return False
    if ctx.arg("partition", "auto") not in ("auto", "rows"):
        return False
    table = ctx.inputs[tables[0]]
    with table.open() as head:
        if head.read(4) == b"PAR1":
            return False
    model = TabularModel.from_bytes(ctx.inputs["model"].read_bytes())
    threshold = declared_float(
        ctx, TABULAR_PREDICT, "threshold", default=float(model.config["threshold"])
    )
    party = f"input {table.slot!r}" + (f" (owner {table.owner})" if table.owner else "")
    try:
        with table.open() as source:
            score_csv_stream(model, source, out, threshold=threshold, party=party)
    except NotStreamable:
        out.clear()
        return False
    return True
