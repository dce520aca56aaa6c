"""Which column holds the id at each party: one ``id_column`` for all, or ``id_columns`` per input.

Parties name their id columns as they like (``customer_no`` at the bank, ``cust_id`` at the
bureau), as pandas' ``merge(left_on=..., right_on=...)`` allows. A task names them with the
argument ``id_columns``, a mapping of input slot to column name; a slot it leaves out uses
``id_column`` (or the function's default).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from teeflow.functions.api import Context, FunctionError

__all__ = ["id_column_per_slot", "id_columns_arg"]


def id_columns_arg(ctx: Context, *, slots: Collection[str]) -> dict[str, str]:
    """The ``id_columns`` argument: ``{input slot: column name}``, checked; ``{}`` when absent.

    Raises FunctionError when it is not a mapping of strings or names a slot not in ``slots``.
    """
    value: Any = ctx.arg("id_columns")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise FunctionError(
            "argument 'id_columns' must map input slots to column names, e.g. "
            '{"bank": "customer_no", "bureau": "cust_id"}'
        )
    unknown = sorted(set(value) - set(slots))
    if unknown:
        raise FunctionError(
            f"argument 'id_columns' names input slot(s) {', '.join(unknown)}, which this task "
            f"does not have; its slots are {', '.join(sorted(slots))}"
        )
    return dict(value)


def id_column_per_slot(ctx: Context, *, slots: Collection[str], default: str) -> dict[str, str]:
    """Each slot's id column: ``id_columns[slot]``, else ``id_column``, else ``default``."""
    shared = ctx.arg("id_column", default)
    if not isinstance(shared, str) or not shared:
        raise FunctionError(f"argument 'id_column' must be a column name, got {shared!r}")
    named = id_columns_arg(ctx, slots=slots)
    return {slot: named.get(slot, shared) for slot in slots}
