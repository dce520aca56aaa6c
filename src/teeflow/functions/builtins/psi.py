"""``psi``: private set intersection of ids held by several parties.

Each input is a CSV table with a header naming the id column (argument ``id_column``, default
``id``; ``id_columns`` maps an input slot to its own name where parties differ), or a plain list of
ids, one per line. For input ``X`` the function writes output slot
``flags:X`` with that party's own rows only, in its own order::

    id,in_intersection
    a17,1
    b02,0

so a party learns which of its ids every other party also holds, and nothing about ids it does not
hold. The optional output slot ``intersection_size`` gets ``{"size": n}`` (distinct common ids).
Ids are compared as exact strings after trimming surrounding whitespace.
"""

from __future__ import annotations

import csv
import io

from teeflow.functions.api import Context, FunctionError, InputData
from teeflow.functions.ids import id_column_per_slot
from teeflow.functions.thresholds import guard_aggregate

__all__ = ["FLAGS_PREFIX", "SIZE_SLOT", "read_ids", "run"]

FLAGS_PREFIX = "flags:"
SIZE_SLOT = "intersection_size"


def _text(data: InputData) -> str:
    try:
        return data.text()
    except UnicodeDecodeError:
        raise FunctionError(f"input {data.slot!r} is not UTF-8 text") from None


def read_ids(data: InputData, id_column: str) -> list[str]:
    """The ids of one input, in its own order (a CSV with ``id_column`` or one id per line)."""
    rows = csv.reader(io.StringIO(_text(data), newline=""))
    header = next((row for row in rows if row), None)
    if header is None:
        return []
    names = [name.strip() for name in header]
    if len(names) == 1 and names[0] != id_column:
        # A plain list of ids: the first line is an id, not a header.
        column, ids = 0, [names[0]]
    elif id_column in names:
        column, ids = names.index(id_column), []
    else:
        raise FunctionError(
            f"input {data.slot!r}: the header has no column {id_column!r}; "
            "name it, or set the argument id_column (or id_columns for this input)"
        )
    for row in rows:
        if not row:
            continue
        if len(row) != len(names):
            raise FunctionError(
                f"input {data.slot!r}, line {rows.line_num}: "
                f"expected {len(names)} fields, found {len(row)}"
            )
        value = row[column].strip()
        if not value:
            raise FunctionError(f"input {data.slot!r}, line {rows.line_num}: the id is empty")
        ids.append(value)
    return ids


def run(ctx: Context) -> None:
    if len(ctx.inputs) < 2:
        raise FunctionError("psi needs at least two inputs")
    id_columns = id_column_per_slot(ctx, slots=ctx.inputs, default="id")
    for slot in ctx.outputs:
        if slot != SIZE_SLOT and slot.removeprefix(FLAGS_PREFIX) not in ctx.inputs:
            raise FunctionError(
                f"psi writes only {FLAGS_PREFIX}<input slot> and {SIZE_SLOT}; "
                f"output slot {slot!r} matches no input"
            )
    ids = {slot: read_ids(data, id_columns[slot]) for slot, data in ctx.inputs.items()}
    common = set.intersection(*(set(values) for values in ids.values()))
    for slot, values in ids.items():
        out = ctx.outputs.get(FLAGS_PREFIX + slot)
        if out is None:
            continue
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", "in_intersection"])
        writer.writerows([value, 1 if value in common else 0] for value in values)
        out.write_text(buffer.getvalue())
    if SIZE_SLOT in ctx.outputs:
        size = {"size": len(common)}
        what = "the intersection size"
        ctx.outputs[SIZE_SLOT].write_json(
            guard_aggregate(size, rows=len(common), min_rows=ctx.min_rows, what=what)
        )
    ctx.progress(step=1, of=1)
