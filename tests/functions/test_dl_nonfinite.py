"""Non-finite and overflowing cells: an error naming the column and the party, or the documented
treatment (a missing value is filled with the training mean); never a model with non-finite
statistics, never an unhandled exception."""

from __future__ import annotations

import json
import math
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import FunctionError
from teeflow.functions.builtins.tabular_serve import TabularPredictor
from teeflow.functions.dl.scoring import TabularModel
from teeflow.functions.dl.tables import Preprocessor

ARGS = {"label_column": "label", "id_column": "id", "epochs": 2, "seed": 0}


def _parties(cell: str = "") -> tuple[bytes, bytes]:
    """A bank (id, income, label) and a bureau (id, debts, score); ``cell`` replaces the
    bureau's ``debts`` of its fifth row when given, written into the CSV as is."""
    rng = np.random.RandomState(0)
    ids = [f"c{i:03d}" for i in range(60)]
    bank = pd.DataFrame(
        {"id": ids, "income": rng.normal(50, 10, 60), "label": rng.randint(0, 2, 60)}
    )
    debts = [f"{v:.3f}" for v in rng.normal(5, 2, 60)]
    if cell:
        debts[4] = cell
    lines = ["id,debts,score"] + [
        f"{i},{d},{s:.3f}" for i, d, s in zip(ids, debts, rng.normal(size=60), strict=True)
    ]
    return bank.to_csv(index=False).encode(), ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("inf", r"column 'debts' of input 'bureau' holds 1 infinite value"),
        ("-Infinity", r"column 'debts' of input 'bureau' holds 1 infinite value"),
        ("1e308", r"column 'debts' of input 'bureau' holds 1 value\(s\) beyond"),
        ("1e309", r"column 'debts' of input 'bureau' holds 1 infinite value"),
    ],
)
def test_training_refuses_a_non_finite_or_overflowing_cell_naming_column_and_party(
    tmp_path: Path, cell: str, message: str
) -> None:
    bank, bureau = _parties(cell)

    with pytest.raises(FunctionError, match=message):
        run_builtin("tabular-train", {"bank": bank, "bureau": bureau}, ARGS, ("model",), tmp_path)


@pytest.mark.parametrize("cell", ["n/a", "", "NA", "null"])
def test_a_missing_marker_is_filled_with_the_mean_and_the_model_stays_finite(
    tmp_path: Path, cell: str
) -> None:
    bank, bureau = _parties(cell)

    run = run_builtin(
        "tabular-train", {"bank": bank, "bureau": bureau}, ARGS, ("model", "metrics"), tmp_path
    )

    with zipfile.ZipFile(BytesIO(run.outputs["model"])) as archive:
        config = json.loads(archive.read("config.json"))
    stats = config["preprocessing"]["numeric"]
    assert [item["column"] for item in stats] == ["income", "debts", "score"]
    assert all(math.isfinite(item["mean"]) and math.isfinite(item["std"]) for item in stats)
    assert run.json("metrics")["n_train"] + run.json("metrics")["n_test"] == 60


def test_scoring_refuses_a_non_finite_cell_naming_column_and_party(tmp_path: Path) -> None:
    bank, bureau = _parties()
    model = run_builtin(
        "tabular-train", {"bank": bank, "bureau": bureau}, ARGS, ("model",), tmp_path
    ).outputs["model"]
    _, bad_bureau = _parties("inf")

    for name, outputs in (("tabular-predict", ("predictions",)), ("evaluate", ("metrics",))):
        with pytest.raises(FunctionError, match="column 'debts' of input 'bureau'"):
            run_builtin(
                name, {"model": model, "bank": bank, "bureau": bad_bureau}, {}, outputs, tmp_path
            )

    predictor = TabularPredictor(TabularModel.from_bytes(model), threshold=0.5)
    for value in (float("inf"), "1e309", 1e300):
        row = {"id": "x", "income": 50.0, "debts": value, "score": 0.0}
        with pytest.raises(FunctionError, match="column 'debts' holds an infinite value or one"):
            predictor.predict(json.dumps({"rows": [row]}).encode(), max_rows=100)
    with pytest.raises(FunctionError, match="column 'debts' holds an infinite value or one"):
        predictor.predict(b"id,income,debts,score\nx,50,1e300,0\n", max_rows=100)


def test_statistics_that_overflow_are_refused_naming_the_column() -> None:
    frame = pd.DataFrame({"ok": [1.0, 2.0, 3.0], "big": [1e200, -1e200, 3e200]})

    with pytest.raises(FunctionError, match="column 'big' has values too large to standardise"):
        Preprocessor.fit(frame, ["ok", "big"])
