"""A member's own table columns, read from the schema summary kept at upload (_columns.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from teeflow.client import MemberHome
from teeflow.client._columns import column_kinds, remembered_columns
from teeflow.client._schema import inspect_data
from teeflow.crypto import DataKey

FRAME = pd.DataFrame(
    {
        "cust_id": ["a1", "a2"],
        "debt": [1.5, None],
        "age": [40, 51],
        "region": ["n", "s"],
        "active": [True, False],
    }
)
KINDS = {"cust_id": "text", "debt": "number", "age": "number", "region": "text", "active": "text"}


def test_column_kinds_in_file_order_from_the_summary_of_csv_and_parquet() -> None:
    parquet = io.BytesIO()
    FRAME.to_parquet(parquet)

    from_csv = inspect_data(FRAME.to_csv(index=False).encode(), filename="t.csv")
    from_parquet = inspect_data(parquet.getvalue(), filename="t.parquet")

    assert column_kinds(from_csv) == KINDS
    assert column_kinds(from_parquet) == KINDS
    assert column_kinds({"format": "zip", "rows": 3, "classes": {"a": 3}}) is None


def test_read_from_the_dataset_record_and_nothing_for_a_malformed_id(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    summary = inspect_data(FRAME.to_csv(index=False).encode(), filename="t.csv")
    home.save_dataset_key(
        "abc123", DataKey.generate(), ciphertext_sha256="00", name="t", schema=summary
    )
    home.save_dataset_key("raw456", DataKey.generate(), ciphertext_sha256="01", name="raw")

    assert list(remembered_columns(home, "abc123") or {}) == list(KINDS)
    assert remembered_columns(home, "raw456") is None
    assert remembered_columns(home, "other1") is None
    assert remembered_columns(home, "../etc") is None


def test_an_old_home_with_only_the_columns_record_still_names_them(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    home.save_dataset_key("old789", DataKey.generate(), ciphertext_sha256="02", name="old")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "old789.json").write_text(json.dumps({"debt": "number"}))

    assert remembered_columns(home, "old789") == {"debt": "number"}
