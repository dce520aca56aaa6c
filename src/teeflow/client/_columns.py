"""The columns of a member's own tables, remembered on its machine at upload (never sent).

A member's review needs to name *its* columns when an output carries statistics of them (the
model file of ``tabular-train`` keeps each feature column's mean and standard deviation, each
text column's category values, and a GBDT model's split thresholds): client/_exposure.py. The
names and a number/text type per column are read here from the plaintext before it is sealed,
and kept under $TEEFLOW_HOME/schemas/ beside the dataset keys.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teeflow.client._home import MemberHome

__all__ = ["SAMPLE_ROWS", "remember_columns", "remembered_columns", "table_columns"]

SAMPLE_ROWS = 1000
"""Rows read to tell a numeric column from a text one."""


def table_columns(source: Path | bytes) -> dict[str, str] | None:
    """``{column: "number" | "text"}`` of a CSV or Parquet table, in file order, judged on its
    first :data:`SAMPLE_ROWS` rows; None when ``source`` is not a readable table."""
    import pandas as pd

    handle = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        frame = pd.read_csv(handle, nrows=SAMPLE_ROWS)
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if not isinstance(handle, Path):
                handle.seek(0)
            batches = pq.ParquetFile(handle).iter_batches(batch_size=SAMPLE_ROWS)
            frame = next(batches, pa.record_batch([])).to_pandas()
        except (ValueError, OSError, pa.ArrowException):
            return None
    if frame.columns.empty:
        return None
    return {
        str(column): (
            "number"
            if pd.api.types.is_numeric_dtype(frame[column])
            and not pd.api.types.is_bool_dtype(frame[column])
            else "text"
        )
        for column in frame.columns
    }


def _path(home: MemberHome, dataset_id: str) -> Path:
    if not dataset_id.isalnum():
        raise ValueError("dataset id must be alphanumeric")
    return home.root / "schemas" / f"{dataset_id}.json"


def remember_columns(home: MemberHome, dataset_id: str, source: Path | bytes) -> None:
    """Keep the columns of table ``source`` for dataset ``dataset_id`` (nothing if not a table)."""
    columns = table_columns(source)
    if columns is None:
        return
    path = _path(home, dataset_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(columns), encoding="utf-8")


def remembered_columns(home: MemberHome, dataset_id: str) -> dict[str, str] | None:
    """The columns kept by :func:`remember_columns`, or None (also for a malformed id)."""
    if not dataset_id.isalnum():
        return None
    path = _path(home, dataset_id)
    if not path.exists():
        return None
    columns: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return columns
