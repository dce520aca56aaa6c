"""``private-join-sum``: sum amounts over the ids that every party holds.

Each input is a CSV table with the columns ``id`` and ``amount`` (names set by the arguments
``id_column`` and ``amount_column``, and ``id_columns`` maps an input slot to its own id column
name where parties differ; other columns are ignored). Output slot ``result`` gets::

    id,amount
    1001,42.50

for each id present in every input, with the sum of all its amounts across the parties (several
rows of one id in one input are summed too), sorted by id (numerically when every id is an
integer). Amounts are summed exactly as decimals. Errors name the input slot and line, never the
values in it.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

from teeflow.functions.api import Context, FunctionError, InputData
from teeflow.functions.ids import id_column_per_slot
from teeflow.functions.thresholds import require_rows

__all__ = ["RESULT_SLOT", "read_amounts", "run"]

RESULT_SLOT = "result"


def read_amounts(data: InputData, id_column: str, amount_column: str) -> dict[str, Decimal]:
    """One input's amounts summed per id; raises FunctionError naming the slot and line."""
    try:
        text = data.text()
    except UnicodeDecodeError:
        raise FunctionError(f"input {data.slot!r} is not UTF-8 text") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next((row for row in rows if row), [])]
    if id_column not in header or amount_column not in header:
        raise FunctionError(
            f"input {data.slot!r}: the header must name the columns {id_column!r} and "
            f"{amount_column!r}"
        )
    id_at, amount_at = header.index(id_column), header.index(amount_column)
    totals: dict[str, Decimal] = {}
    for row in rows:
        if not row:
            continue
        where = f"input {data.slot!r}, line {rows.line_num}"
        if len(row) != len(header):
            raise FunctionError(f"{where}: expected {len(header)} fields, found {len(row)}")
        key = row[id_at].strip()
        if not key:
            raise FunctionError(f"{where}: the {id_column!r} value is empty")
        try:
            amount = Decimal(row[amount_at].strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite():
            raise FunctionError(f"{where}: the {amount_column!r} value is not a number")
        totals[key] = totals.get(key, Decimal(0)) + amount
    return totals


def _sort_key(keys: set[str]) -> list[str]:
    if all(key.lstrip("-").isdigit() for key in keys):
        return sorted(keys, key=int)
    return sorted(keys)


def run(ctx: Context) -> None:
    amount_column = str(ctx.arg("amount_column", "amount"))
    if len(ctx.inputs) < 2:
        raise FunctionError("private-join-sum needs at least two inputs")
    id_columns = id_column_per_slot(ctx, slots=ctx.inputs, default="id")
    if RESULT_SLOT not in ctx.outputs:
        raise FunctionError(f"private-join-sum writes the output slot {RESULT_SLOT!r}; add it")
    tables = [
        read_amounts(data, id_columns[slot], amount_column) for slot, data in ctx.inputs.items()
    ]
    common = set.intersection(*(set(table) for table in tables))
    require_rows(len(common), min_rows=ctx.min_rows, what="the join (ids every party holds)")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "amount"])
    for key in _sort_key(common):
        writer.writerow([key, str(sum((table[key] for table in tables), Decimal(0)))])
    ctx.outputs[RESULT_SLOT].write_text(buffer.getvalue())
    ctx.progress(step=1, of=1)
