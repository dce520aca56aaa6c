"""``teeflow task infer``: rows to a running inference session and predictions back, through the
command only, against one real local platform. hospital serves its model; clinic queries it."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from test_platform_cli import Member, one_line_error

from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.registry import get_builtin
from teeflow.server.launcher import LocalPlatform

PASSWORD_ENV = "TEEFLOW_TEST_PASSWORD"


def _model() -> bytes:
    out = OutputData("model")
    table = breast_cancer_hospitals()["hospital_a.csv"]
    with tempfile.TemporaryDirectory() as scratch:
        ctx = Context(
            inputs={"patients": InputData("patients", table)},
            args={"label_column": "malignant", "id_column": "patient_id", "epochs": 2},
            outputs={"model": out},
            scratch=Path(scratch),
        )
        get_builtin("tabular-train").load()(ctx)
    return out.getvalue()


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Member], str]]:
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1) as platform:
        members = {}
        for name in ("hospital", "clinic"):
            member = Member(name, tmp_path_factory.mktemp(f"home-{name}"))
            member.ok("keys", "init")
            member.ok(
                "account", "register", "--server", platform.url, name,
                "--password-env", PASSWORD_ENV,
            )  # fmt: skip
            member.ok("attest", "trust", "--simulated", "--data-dir", str(platform.data_dir))
            members[name] = member
        hospital = members["hospital"]
        model = tmp_path_factory.mktemp("model") / "model.zip"
        model.write_bytes(_model())
        dataset = hospital.json("dataset", "upload", str(model), "--name", "m", "--kind", "model")
        task = hospital.json(
            "task", "propose", "tabular-serve", "--input", f"model={dataset['id']}",
            "--output", "usage=hospital", "--arg", 'requesters=["clinic"]',
        )  # fmt: skip
        for member in members.values():
            member.ok("task", "approve", task["id"], "--yes")
        hospital.ok("task", "run", task["id"])
        yield members, str(task["id"])
        hospital.ok("task", "cancel", task["id"])


def test_infer_prints_the_predictions_of_a_csv_table(
    serving: tuple[dict[str, Member], str], tmp_path: Path
) -> None:
    members, task_id = serving
    rows = tmp_path / "rows.csv"
    rows.write_bytes(breast_cancer_hospitals()["new_patients.csv"])

    predictions = members["clinic"].json("task", "infer", task_id, "--input", str(rows))
    table = members["clinic"].ok("task", "infer", task_id, "--input", str(rows)).stdout

    expected_ids = pd.read_csv(io.BytesIO(rows.read_bytes()))["patient_id"].tolist()
    assert [p["patient_id"] for p in predictions] == expected_ids
    assert all(0.0 <= p["probability"] <= 1.0 and p["label"] in (0, 1) for p in predictions)
    assert "Predictions" in table and "probability" in table


def test_a_json_list_of_rows_works_and_a_non_requester_gets_a_one_line_error(
    serving: tuple[dict[str, Member], str], tmp_path: Path
) -> None:
    members, task_id = serving
    frame = pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"]))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(frame.head(2).to_dict("records")))

    predictions = members["clinic"].json("task", "infer", task_id, "--input", str(rows))
    refused = members["hospital"]("task", "infer", task_id, "--input", str(rows))

    assert len(predictions) == 2
    assert "'hospital' is not a requester of this session" in one_line_error(refused)
