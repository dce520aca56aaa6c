"""Tabular built-ins: row / column partitions, train, predict, evaluate, what metrics disclose."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import FunctionError
from teeflow.functions.datasets import breast_cancer_hospitals, german_credit_parties
from teeflow.functions.dl.tables import Preprocessor, combine_tables

FAST = {"epochs": 3, "batch_size": 64, "seed": 0}


def _frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def test_row_partitioned_tables_are_concatenated() -> None:
    a = pd.DataFrame({"id": [1, 2], "x": [0.1, 0.2], "y": [0, 1]})
    b = pd.DataFrame({"id": [3], "x": [0.3], "y": [1]})

    combined = combine_tables({"a": a, "b": b}, partition="auto", id_column="id")

    assert combined.partition == "rows"
    assert combined.frame["id"].tolist() == [1, 2, 3]


def test_column_partitioned_tables_are_inner_joined_on_the_id() -> None:
    bank = pd.DataFrame({"cid": ["c", "a", "b"], "income": [3, 1, 2], "label": [1, 0, 1]})
    bureau = pd.DataFrame({"cid": ["b", "d", "a"], "debts": [20, 40, 10]})

    combined = combine_tables({"bank": bank, "bureau": bureau}, partition="auto", id_column=None)

    assert combined.partition == "columns" and combined.id_column == "cid"
    assert combined.frame.to_dict("list") == {
        "cid": ["a", "b"],
        "income": [1, 2],
        "label": [0, 1],
        "debts": [10, 20],
    }
    assert combined.contributions == {"bank": ["income", "label"], "bureau": ["debts"]}


def test_join_rejects_duplicate_ids_and_clashing_columns() -> None:
    left = pd.DataFrame({"id": [1, 1], "x": [1, 2]})
    right = pd.DataFrame({"id": [1], "x": [3], "z": [0]})

    with pytest.raises(FunctionError, match="repeats values"):
        combine_tables({"l": left, "r": right}, partition="columns", id_column="id")
    with pytest.raises(FunctionError, match="also come from another input"):
        combine_tables({"l": left.iloc[:1], "r": right}, partition="columns", id_column="id")


def test_preprocessor_one_hot_is_independent_of_row_order() -> None:
    frame = pd.DataFrame({"colour": ["red", "blue", "red", "green"], "size": [1.0, 2.0, 3.0, 4.0]})

    fitted = Preprocessor.fit(frame, ["colour", "size"])
    reversed_fit = Preprocessor.fit(frame.iloc[::-1], ["colour", "size"])

    assert fitted.to_dict() == reversed_fit.to_dict()
    assert fitted.categorical == {"colour": ["blue", "green", "red"]}
    encoded = fitted.transform(pd.DataFrame({"colour": ["green", "purple"], "size": [2.5, None]}))
    assert encoded.tolist() == [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_breast_cancer_two_hospitals_train_predict_evaluate(tmp_path: Path) -> None:
    data = breast_cancer_hospitals()
    args = {
        "label_column": "malignant",
        "id_column": "patient_id",
        "model": "mlp",
        "hidden": [16],
        **FAST,
    }

    train = run_builtin(
        "tabular-train",
        {"hospital_a": data["hospital_a.csv"], "hospital_b": data["hospital_b.csv"]},
        args,
        ("model", "metrics"),
        tmp_path,
    )
    predict = run_builtin(
        "tabular-predict",
        {"model": train.outputs["model"], "table": data["new_patients.csv"]},
        {},
        ("predictions",),
        tmp_path,
    )
    evaluate = run_builtin(
        "evaluate",
        {"model": train.outputs["model"], "table": data["new_patients_labelled.csv"]},
        {},
        ("metrics",),
        tmp_path,
    )

    metrics = train.json("metrics")
    assert metrics["partition"] == "rows" and metrics["auc"] > 0.95
    assert metrics["n_train"] + metrics["n_test"] == len(_frame(data["hospital_a.csv"])) + len(
        _frame(data["hospital_b.csv"])
    )
    assert [p["epoch"] for p in train.progress] == [1, 2, 3]
    rows = list(csv.DictReader(io.StringIO(predict.outputs["predictions"].decode())))
    assert list(rows[0]) == ["patient_id", "probability", "label"]
    assert len(rows) == len(_frame(data["new_patients.csv"]))
    assert evaluate.json("metrics")["auc"] > 0.9
    assert set(evaluate.json("metrics")) >= {"auc", "ks", "accuracy", "confusion_matrix"}


def test_credit_bank_and_bureau_joined_by_id(tmp_path: Path) -> None:
    data = german_credit_parties()
    args = {"label_column": "default", "id_column": "applicant_id", **FAST}

    run = run_builtin(
        "tabular-train",
        {"bank": data["bank.csv"], "bureau": data["bureau.csv"]},
        args,
        ("model", "metrics", "metrics_public"),
        tmp_path,
    )

    metrics = run.json("metrics")
    ids = set(_frame(data["bank.csv"])["applicant_id"]) & set(
        _frame(data["bureau.csv"])["applicant_id"]
    )
    assert metrics["partition"] == "columns"
    assert metrics["n_train"] + metrics["n_test"] == len(ids)
    assert "credit_history" in metrics["columns_per_input"]["bureau"]
    assert "credit_amount" in metrics["columns_per_input"]["bank"]
    assert 0.6 < metrics["auc"] <= 1.0 and 0.0 < metrics["ks"] <= 1.0
    assert run.json("metrics_public") == {k: metrics[k] for k in ("auc", "ks", "accuracy")}


def _leaves(obj: object) -> list[object]:
    """Every key and leaf value of a JSON document."""
    if isinstance(obj, dict):
        return [*obj.keys(), *(leaf for value in obj.values() for leaf in _leaves(value))]
    if isinstance(obj, list):
        return [leaf for value in obj for leaf in _leaves(value)]
    return [obj]


def test_metrics_never_contain_input_cell_values(tmp_path: Path) -> None:
    data = german_credit_parties()
    tables = {"bank": _frame(data["bank.csv"]), "bureau": _frame(data["bureau.csv"])}
    run = run_builtin(
        "tabular-train",
        {k: data[f"{k}.csv"] for k in tables},
        {"label_column": "default", "id_column": "applicant_id", **FAST},
        ("model", "metrics", "metrics_public"),
        tmp_path,
    )
    schema = set(tables) | {c for t in tables.values() for c in t.columns}
    text_cells, number_cells = set(), set()
    for table in tables.values():
        for column in table.columns:
            if not pd.api.types.is_numeric_dtype(table[column]):
                text_cells |= set(table[column]) - schema  # ids and category values
            else:
                # Non-trivial numbers only: amounts above any row count the metrics may hold.
                number_cells |= {v for v in table[column] if abs(v) > len(table) + 1}

    for slot in ("metrics", "metrics_public"):
        leaves = _leaves(run.json(slot))
        leaked = [
            v
            for v in leaves
            if v in text_cells
            or (isinstance(v, int | float) and not isinstance(v, bool) and v in number_cells)
        ]
        assert leaked == [], f"{slot} discloses input values {leaked[:5]}"
        raw = run.outputs[slot].decode()
        distinctive = {c for c in text_cells if len(c) > 8 and not any(c in n for n in schema)}
        assert not [cell for cell in distinctive if cell in raw]


def test_only_metrics_public_can_be_requested(tmp_path: Path) -> None:
    data = breast_cancer_hospitals()
    run = run_builtin(
        "tabular-train",
        {"a": data["hospital_a.csv"]},
        {"label_column": "malignant", "id_column": "patient_id", **FAST},
        ("metrics_public",),
        tmp_path,
    )

    assert set(run.outputs) == {"metrics_public"}
    assert set(run.json("metrics_public")) == {"auc", "ks", "accuracy"}


@pytest.mark.parametrize(
    ("args", "outputs", "message"),
    [
        ({}, ("metrics",), "'label_column' is required"),
        ({"label_column": "nope"}, ("metrics",), "label column 'nope' is in none"),
        ({"label_column": "malignant", "model": "svm"}, ("metrics",), "'model' must be one of"),
        (
            {"label_column": "malignant", "hidden": "a,b", "model": "mlp"},
            ("metrics",),
            "list of layer sizes",
        ),
        ({"label_column": "malignant", "test_fraction": 2}, ("metrics",), "'test_fraction'"),
        ({"label_column": "malignant", "batch_size": True}, ("metrics",), "must be an integer"),
        ({"label_column": "malignant"}, ("weights",), "unknown output slot"),
        ({"label_column": "mean_radius"}, ("metrics",), "is not 0/1"),
    ],
)
def test_tabular_train_rejects_bad_arguments(
    tmp_path: Path, args: dict, outputs: tuple[str, ...], message: str
) -> None:
    data = breast_cancer_hospitals()
    with pytest.raises(FunctionError, match=message):
        run_builtin(
            "tabular-train",
            {"a": data["hospital_a.csv"]},
            {"id_column": "patient_id", **args},
            outputs,
            tmp_path,
        )


def test_an_identifier_column_is_not_one_hot_encoded(tmp_path: Path) -> None:
    data = breast_cancer_hospitals()
    with pytest.raises(FunctionError, match="pass it as 'id_column'"):
        run_builtin(
            "tabular-train",
            {"a": data["hospital_a.csv"]},
            {"label_column": "malignant", **FAST},
            ("metrics",),
            tmp_path,
        )


def test_predict_rejects_a_table_without_the_model_columns(tmp_path: Path) -> None:
    data = breast_cancer_hospitals()
    train = run_builtin(
        "tabular-train",
        {"a": data["hospital_a.csv"]},
        {"label_column": "malignant", "id_column": "patient_id", **FAST},
        ("model",),
        tmp_path,
    )
    other = b"patient_id,age\nP1,40\n"

    with pytest.raises(FunctionError, match="lacks the model's feature column"):
        run_builtin(
            "tabular-predict",
            {"model": train.outputs["model"], "table": other},
            {},
            ("predictions",),
            tmp_path,
        )


def test_a_long_training_run_fits_its_declared_metrics_output(tmp_path: Path) -> None:
    """2,000 epochs once made a metrics output over its 64 KiB declaration, so the enclave
    refused the task after training; the metrics now list at most HISTORY_POINTS epochs."""
    from teeflow.functions.dl.training import HISTORY_POINTS, thinned_history
    from teeflow.functions.outputs import check_outputs
    from teeflow.functions.registry import get_builtin

    rows = "id,x,y\n" + "".join(f"{i},{i % 7 / 7},{i % 2}\n" for i in range(40))
    train = run_builtin(
        "tabular-train",
        {"t": rows.encode()},
        {"label_column": "y", "id_column": "id", "model": "logistic", "epochs": 1500,
         "batch_size": 64, "seed": 0},
        ("model", "metrics"),
        tmp_path,
    )  # fmt: skip

    epochs = [record["epoch"] for record in train.json("metrics")["epochs"]]
    declarations = get_builtin("tabular-train").declarations
    assert check_outputs(train.outputs, declarations, {"t": len(rows)}) is None
    assert len(epochs) == HISTORY_POINTS and epochs[0] == 1 and epochs[-1] == 1500
    assert epochs == sorted(set(epochs))
    assert thinned_history([{"epoch": 1}, {"epoch": 2}]) == [{"epoch": 1}, {"epoch": 2}]
