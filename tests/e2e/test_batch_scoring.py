"""Batch scoring streams through a real executor process (issue 16, P2a): a table of more rows
than one block is decrypted, parsed, scored and written block by block in the enclave, and the
member receives exactly the bytes the whole-table path writes for it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.builtins import tabular_predict
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.dl.stream_scoring import ROWS_PER_BLOCK

from .conftest import MemberFactory


def _whole_table_predictions(model: bytes, table: bytes) -> bytes:
    """tabular-predict in process, forced down the whole-table path (the reference)."""
    out = OutputData("predictions")
    ctx = Context(
        inputs={"model": InputData("model", model), "table": InputData("table", table)},
        args={},
        outputs={"predictions": out},
        scratch=Path("/nonexistent"),
    )
    tabular_predict.run(ctx, stream=False)
    return out.getvalue()


def test_a_table_of_several_blocks_scores_to_the_whole_table_bytes(
    member: MemberFactory,
) -> None:
    clinic = member("clinic")
    data = breast_cancer_hospitals()
    train = clinic.propose(
        "tabular-train",
        inputs={
            "a": clinic.upload_dataset(data["hospital_a.csv"], name="a", kind="table")["id"],
            "b": clinic.upload_dataset(data["hospital_b.csv"], name="b", kind="table")["id"],
        },
        outputs={"model": {"recipients": ["clinic"]}, "metrics": {"recipients": ["clinic"]}},
        arguments={"label_column": "malignant", "id_column": "patient_id", "epochs": 2},
    )
    clinic.approve(train["id"])
    clinic.run(train["id"])
    assert clinic.wait(train["id"], timeout=300)["status"] == "succeeded"
    model = clinic.output(train["id"], "model")
    assert isinstance(model, bytes)
    base = pd.read_csv(io.BytesIO(data["new_patients.csv"]))
    rows = ROWS_PER_BLOCK + 300  # two blocks, the second short
    frame = base.iloc[np.arange(rows) % len(base)].reset_index(drop=True)
    frame["patient_id"] = np.arange(rows)
    table = frame.to_csv(index=False).encode("utf-8")

    predict = clinic.propose(
        "tabular-predict",
        inputs={
            "model": clinic.upload_dataset(model, name="model", kind="model")["id"],
            "table": clinic.upload_dataset(table, name="rows", kind="table")["id"],
        },
        outputs={"predictions": {"recipients": ["clinic"]}},
    )
    clinic.approve(predict["id"])
    clinic.run(predict["id"])
    done = clinic.wait(predict["id"], timeout=300)

    assert done["status"] == "succeeded", done["failure_reason"]
    assert clinic.output(predict["id"], "predictions") == _whole_table_predictions(model, table)
