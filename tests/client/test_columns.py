"""A member's own table columns, remembered at upload for its review (client/_columns.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from teeflow.client import MemberHome
from teeflow.client._columns import remember_columns, remembered_columns, table_columns

FRAME = pd.DataFrame(
    {"cust_id": ["a1", "a2"], "debt": [1.5, None], "age": [40, 51], "region": ["n", "s"]}
)


def test_columns_and_their_types_in_file_order_from_csv_and_parquet(tmp_path: Path) -> None:
    parquet = io.BytesIO()
    FRAME.to_parquet(parquet)
    csv_file = tmp_path / "t.csv"
    csv_file.write_text(FRAME.to_csv(index=False))

    expected = {"cust_id": "text", "debt": "number", "age": "number", "region": "text"}
    assert table_columns(csv_file) == expected
    assert table_columns(parquet.getvalue()) == expected


def test_remembered_per_dataset_and_nothing_for_a_malformed_id(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)

    remember_columns(home, "abc123", FRAME.to_csv(index=False).encode())

    assert list(remembered_columns(home, "abc123") or {}) == ["cust_id", "debt", "age", "region"]
    assert remembered_columns(home, "other1") is None
    assert remembered_columns(home, "../etc") is None
