"""The kind of each column of a member's own table, read from its schema summary, for its review.

A member's review names *its* columns when an output carries statistics of them (the model file
of ``tabular-train`` keeps each feature column's mean and standard deviation, each text column's
category values, and a GBDT model's split thresholds): client/_exposure.py. The one record of a
table's columns is the schema summary its upload check kept beside the dataset key
(client/_schema.py, ``MemberHome.save_dataset_key``); this module only reads it.

Homes written before the schema summary existed kept ``{column: "number" | "text"}`` under
``$TEEFLOW_HOME/schemas/<dataset id>.json``; that file is still read when a dataset's record has
no schema summary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from teeflow.client._home import MemberHome

__all__ = ["column_kinds", "remembered_columns"]

_NUMBER_TYPES = frozenset({"integer", "number"})
"""Schema summary column types whose statistics are a mean and standard deviation; every other
type (text, boolean, datetime) is encoded, and so carried, as category values."""


def column_kinds(schema: Mapping[str, Any]) -> dict[str, str] | None:
    """``{column: "number" | "text"}`` in file order from a schema summary; None when it
    describes no table (images, npz)."""
    columns = schema.get("columns")
    if not isinstance(columns, list):
        return None
    return {
        str(column["name"]): "number" if column.get("type") in _NUMBER_TYPES else "text"
        for column in columns
        if isinstance(column, Mapping) and "name" in column
    }


def remembered_columns(home: MemberHome, dataset_id: str) -> dict[str, str] | None:
    """The column kinds of this member's dataset ``dataset_id`` (see :func:`column_kinds`), or
    None when it holds no table summary for it (also for a malformed id)."""
    if not dataset_id.isalnum():
        return None
    record = home.dataset_record(dataset_id)
    schema = record.get("schema") if record is not None else None
    if isinstance(schema, Mapping):
        return column_kinds(schema)
    legacy = home.root / "schemas" / f"{dataset_id}.json"
    if not legacy.exists():
        return None
    kinds: dict[str, str] = json.loads(legacy.read_text(encoding="utf-8"))
    return kinds
