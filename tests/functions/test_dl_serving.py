"""``tabular-serve``: the per-request path encodes and scores exactly as ``tabular-predict``."""

from __future__ import annotations

import importlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import Context, FunctionError, InputData
from teeflow.functions.datasets import breast_cancer_hospitals, german_credit_parties
from teeflow.functions.dl.tables import Preprocessor, combine_tables
from teeflow.functions.registry import builtin_catalogue

FAST = {"epochs": 2, "batch_size": 64, "seed": 0}


def _credit_frame() -> pd.DataFrame:
    files = german_credit_parties()
    tables = {n: pd.read_csv(io.BytesIO(files[f"{n}.csv"])) for n in ("bank", "bureau")}
    return combine_tables(tables, partition="columns", id_column="applicant_id").frame


def test_records_encode_exactly_as_the_frame_with_text_columns() -> None:
    frame = _credit_frame()
    features = [c for c in frame.columns if c not in ("applicant_id", "default")]
    preprocessor = Preprocessor.fit(frame, features)
    assert preprocessor.categorical, "the credit data has text columns"
    records = frame.head(200).to_dict("records")

    from_records = preprocessor.transform_records(records)
    from_frame = preprocessor.transform(pd.DataFrame.from_records(records))

    assert from_records.dtype == np.float32
    assert np.array_equal(from_records, from_frame)


def test_records_read_missing_and_textual_numbers_as_the_frame_does() -> None:
    preprocessor = Preprocessor(numeric={"x": (2.0, 4.0)}, categorical={"c": ["1", "a", "b"]})
    records = [
        {"x": 6, "c": "a"},
        {"x": None, "c": None},
        {"x": "10", "c": 1},
        {"x": "", "c": "unseen"},
        {"x": float("nan"), "c": True},
        {"c": "b"},  # x missing from this row only
        {"x": np.int64(3), "c": np.str_("a")},
        {"x": np.float32(0.5), "c": "b"},
    ]

    from_records = preprocessor.transform_records(records)

    assert np.array_equal(from_records, preprocessor.transform(pd.DataFrame.from_records(records)))


@pytest.mark.parametrize("bad", ["wide", "1_000", " ", [1], 10**400])
def test_a_value_that_is_not_a_number_is_refused(bad: object) -> None:
    preprocessor = Preprocessor(numeric={"x": (0.0, 1.0)})

    with pytest.raises(FunctionError, match="column 'x' must be numeric"):
        preprocessor.transform_records([{"x": bad}])


def test_a_feature_column_missing_from_every_row_is_refused() -> None:
    preprocessor = Preprocessor(numeric={"x": (0.0, 1.0), "y": (0.0, 1.0)})

    with pytest.raises(FunctionError, match=r"lacks the model's feature column\(s\) \['y'\]"):
        preprocessor.transform_records([{"x": 1}])


def test_a_session_predictor_answers_json_rows_and_csv_like_tabular_predict(
    tmp_path: Path,
) -> None:
    data = breast_cancer_hospitals()
    args = {"label_column": "malignant", "id_column": "patient_id", "model": "mlp", **FAST}
    model = run_builtin(
        "tabular-train", {"a": data["hospital_a.csv"]}, args, ("model",), tmp_path
    ).outputs["model"]
    batch = run_builtin(
        "tabular-predict",
        {"model": model, "table": data["new_patients.csv"]},
        {},
        ("predictions",),
        tmp_path,
    ).outputs["predictions"]
    serve = importlib.import_module(builtin_catalogue()["tabular-serve"].module)
    ctx = Context(
        inputs={"model": InputData("model", model)},
        args={"requesters": ["alice"]},
        outputs={},
        scratch=tmp_path,
    )
    predictor = serve.open_session(ctx)
    rows = pd.read_csv(io.BytesIO(data["new_patients.csv"])).to_dict("records")

    as_json = predictor.predict(json.dumps({"rows": rows}).encode(), max_rows=len(rows))
    as_csv = predictor.predict(data["new_patients.csv"], max_rows=len(rows))

    expected = pd.read_csv(io.BytesIO(batch)).to_dict("records")
    assert as_json["predictions"] == as_csv["predictions"] == expected


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (b'{"rows": "nope"}', "a JSON request must be"),
        (b'{"rows": []}', "the request holds no rows"),
        (b'{"rows": [{}, {}, {}]}', "holds 3 rows; this session answers at most 2"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_a_malformed_request_says_what_to_fix(
    request_body: bytes, message: str, tmp_path: Path
) -> None:
    serve = importlib.import_module("teeflow.functions.builtins.tabular_serve")
    predictor = serve.TabularPredictor.__new__(serve.TabularPredictor)  # no model needed

    with pytest.raises(FunctionError, match=message):
        predictor.predict(request_body, max_rows=2)


@pytest.mark.parametrize("name", ["tabular-serve", "image-serve"])
def test_a_serve_built_in_is_a_session_that_does_not_run_as_a_batch_task(
    name: str, tmp_path: Path
) -> None:
    builtin = builtin_catalogue()[name]
    assert builtin.session and builtin.outputs == ("usage",)
    assert callable(builtin.load_session())
    with pytest.raises(FunctionError, match="runs as an inference session"):
        run_builtin(name, {"model": b""}, {}, ("usage",), tmp_path)
    with pytest.raises(KeyError):
        builtin_catalogue()["tabular-predict"].load_session()


def test_an_image_session_predictor_answers_like_image_classify_predict(tmp_path: Path) -> None:
    from teeflow.functions.datasets import digits_hospitals

    files = digits_hospitals()
    model = run_builtin(
        "image-classify-train",
        {"a": files["hospital_a.npz"]},
        {"model": "cnn", **FAST},
        ("model",),
        tmp_path,
    ).outputs["model"]
    batch = run_builtin(
        "image-classify-predict",
        {"model": model, "images": files["hospital_b.npz"]},
        {},
        ("predictions",),
        tmp_path,
    ).outputs["predictions"]
    serve = importlib.import_module(builtin_catalogue()["image-serve"].module)
    ctx = Context(
        inputs={"model": InputData("model", model)},
        args={"requesters": ["alice"]},
        outputs={},
        scratch=tmp_path,
    )

    answer = serve.open_session(ctx).predict(files["hospital_b.npz"], max_rows=10_000)

    expected = pd.read_csv(io.BytesIO(batch), dtype={"name": str, "predicted": str}).to_dict(
        "records"
    )
    assert json.loads(json.dumps(answer))["predictions"] == expected
