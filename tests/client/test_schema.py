"""The member's local checks: a file before it is sealed (client/_schema.py) and its own inputs
against a built-in's declaration before it signs (client/_declared.py)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from teeflow.client import ClientError, MemberHome
from teeflow.client._declared import check_own_inputs, check_proposal
from teeflow.client._schema import checked_schema, inspect_data
from teeflow.crypto import DataKey

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_csv_summary_holds_names_types_and_counts_never_values() -> None:
    summary = inspect_data(b"id,age,income,city\n1,54,1.5,Oslo\n2,,2.25,Bergen\n", filename="t.csv")

    assert summary == {
        "format": "csv",
        "rows": 2,
        "columns": [
            {"name": "id", "type": "integer"},
            {"name": "age", "type": "integer", "missing": 1},
            {"name": "income", "type": "number"},
            {"name": "city", "type": "text"},
        ],
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"id,a\n", "has a header but no rows"),
        (b"id,id\n1,2\n", "column name(s) id appear twice"),
        (b"id,\n1,2\n", "the header has an empty column name"),
        (b"id,x\n1,1e309\n", "column 'x' holds a non-finite or overflowing number (data row 1)"),
        (
            b"id,x\n1,2\n2,-inf\n",
            "column 'x' holds a non-finite or overflowing number (data row 2)",
        ),
    ],
)
def test_a_table_a_task_could_not_read_is_refused(content: bytes, expected: str) -> None:
    with pytest.raises(ClientError) as refused:
        inspect_data(content, filename="t.csv")
    assert expected in str(refused.value)


def test_a_parquet_table_is_read_and_a_truncated_one_refused() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"id": [1, 2], "score": [0.5, 0.25]}).to_parquet(buffer)
    data = buffer.getvalue()

    summary = inspect_data(data, filename="t.parquet")
    with pytest.raises(ClientError) as refused:
        inspect_data(data[: len(data) // 2], filename="t.parquet")

    assert summary["format"] == "parquet" and summary["rows"] == 2
    assert "not a readable Parquet file" in str(refused.value)


def test_an_image_zip_needs_class_folders() -> None:
    good = _zip({"benign/a.png": PNG, "benign/b.png": PNG, "malignant/c.png": PNG})

    summary = inspect_data(good, filename="scans.zip")

    assert summary == {"format": "zip", "rows": 3, "classes": {"benign": 2, "malignant": 1}}
    for files, expected in [
        ({"a.png": PNG}, "lie outside a class folder"),
        ({"notes/readme.txt": b"x"}, "holds no images"),
    ]:
        with pytest.raises(ClientError) as refused:
            inspect_data(_zip(files), filename="scans.zip")
        assert expected in str(refused.value)
    with pytest.raises(ClientError) as truncated:
        inspect_data(good[:-30], filename="scans.zip")
    assert "not a readable zip" in str(truncated.value)


def test_an_npz_summary_counts_its_classes() -> None:
    buffer = io.BytesIO()
    labels = np.array([0, 1, 1])
    np.savez(buffer, train_images=np.zeros((3, 4, 4)), train_labels=labels)

    summary = inspect_data(buffer.getvalue(), filename="mnist.npz")

    assert summary["format"] == "npz" and summary["rows"] == 3
    assert summary["classes"] == {"0": 1, "1": 2}


def test_only_tables_and_images_are_checked(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_bytes(b"id,x\n1,2\n")

    assert checked_schema(b"\x00\xffweights", kind="model") is None
    assert checked_schema(b"\x00\xff", kind="other") is None
    assert checked_schema(table, kind="other") is not None  # a .csv file is a table
    with pytest.raises(ClientError):
        checked_schema(b"\xff\xfe", kind="table")


def test_a_proposal_for_an_uploaded_function_is_not_checked() -> None:
    check_proposal("0123abcd", arguments={"anything": 1}, inputs={})
    with pytest.raises(ClientError) as refused:
        check_proposal("psi", arguments={"id_column": 5}, inputs={"a": "x", "b": "y"})
    assert "argument `id_column` must be str" in str(refused.value)


def _home_with(tmp_path: Path, schema: dict[str, Any] | None) -> MemberHome:
    home = MemberHome(tmp_path)
    home.save_dataset_key(
        "d1", DataKey.generate(), ciphertext_sha256="c", name="mine.csv", schema=schema
    )
    return home


def _contract(function: str, arguments: dict[str, Any], slot: str = "mine") -> dict[str, Any]:
    inputs = {
        slot: {"dataset_id": "d1", "owners": ["me"], "joint": None},
        "theirs": {"dataset_id": "d2", "owners": ["them"], "joint": None},
    }
    return {
        "function": {"kind": "builtin", "name": function},
        "arguments": arguments,
        "inputs": inputs,
    }


TABLE = {"format": "csv", "rows": 9, "columns": [{"name": "cust", "type": "integer"}]}


def test_approval_checks_the_id_column_each_party_names(tmp_path: Path) -> None:
    home = _home_with(tmp_path, TABLE)

    fine = check_own_inputs(_contract("psi", {"id_columns": {"mine": "cust"}}), me="me", home=home)
    with pytest.raises(ClientError) as refused:
        check_own_inputs(_contract("private-join-sum", {}), me="me", home=home)

    assert fine == []
    assert "has no column 'id', the id column; its columns are cust" in str(refused.value)


def test_a_plain_id_list_passes_psi_and_images_are_refused_where_tables_go(tmp_path: Path) -> None:
    psi = _contract("psi", {})
    images = {"format": "zip", "rows": 3, "classes": {"a": 3}}

    assert check_own_inputs(psi, me="me", home=_home_with(tmp_path / "a", TABLE)) == []
    with pytest.raises(ClientError) as refused:
        check_own_inputs(psi, me="me", home=_home_with(tmp_path / "b", images))
    assert "is zip (images), but psi takes table data in this slot" in str(refused.value)


def test_a_dataset_without_a_summary_is_noted_not_refused(tmp_path: Path) -> None:
    notes = check_own_inputs(_contract("psi", {}), me="me", home=_home_with(tmp_path, None))

    assert notes == [
        "your dataset 'mine.csv' (input 'mine'): no schema summary was recorded at upload; "
        "not checked"
    ]
