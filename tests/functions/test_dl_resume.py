"""A trainer resumed from an epoch checkpoint ends bit-equal to an uninterrupted run."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest_dl import Crash, run_builtin

from teeflow.functions.api import FunctionError
from teeflow.functions.datasets import digits_hospitals, german_credit_parties


def _weights(model_blob: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(model_blob)) as blob:
        archive = np.load(io.BytesIO(blob.read("weights.npz")), allow_pickle=False)
        return {name: archive[name] for name in archive.files}


def _crash_and_resume(name: str, inputs: dict[str, bytes], args: dict, tmp_path: Path) -> None:
    outputs = ("model", "metrics")
    straight = run_builtin(name, inputs, args, outputs, tmp_path / "straight")
    with pytest.raises(Crash):
        run_builtin(name, inputs, args, outputs, tmp_path / "crashed", crash_after_checkpoints=2)
    crashed_checkpoint = straight.checkpoints[1]  # same bytes the crashed run saved last

    resumed = run_builtin(
        name, inputs, args, outputs, tmp_path / "resumed", restored=crashed_checkpoint
    )

    assert [p["epoch"] for p in resumed.progress] == [3]
    # Every epoch but the last is checkpointed (the last one's state is the model itself).
    assert len(straight.checkpoints) == 2
    assert resumed.checkpoints == []
    assert resumed.outputs["metrics"] == straight.outputs["metrics"]
    expected, actual = _weights(straight.outputs["model"]), _weights(resumed.outputs["model"])
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


def test_tabular_resume_is_bit_equal(tmp_path: Path) -> None:
    data = german_credit_parties()
    args = {
        "label_column": "default",
        "id_column": "applicant_id",
        "model": "mlp",
        "hidden": [8],
        "epochs": 3,
        "batch_size": 32,
        "seed": 7,
    }

    _crash_and_resume(
        "tabular-train", {"bank": data["bank.csv"], "bureau": data["bureau.csv"]}, args, tmp_path
    )


def test_image_resume_is_bit_equal(tmp_path: Path) -> None:
    data = digits_hospitals()
    args = {"epochs": 3, "batch_size": 128, "seed": 3}

    _crash_and_resume("image-classify-train", {"a": data["hospital_a.npz"]}, args, tmp_path)


def test_checkpoint_of_another_setup_is_refused(tmp_path: Path) -> None:
    data = german_credit_parties()
    base = {"label_column": "default", "id_column": "applicant_id", "epochs": 2}
    first = run_builtin(
        "tabular-train",
        {"bank": data["bank.csv"], "bureau": data["bureau.csv"]},
        base,
        ("metrics",),
        tmp_path,
    )

    with pytest.raises(FunctionError, match="different training setup"):
        run_builtin(
            "tabular-train",
            {"bank": data["bank.csv"], "bureau": data["bureau.csv"]},
            {**base, "learning_rate": 0.5},
            ("metrics",),
            tmp_path,
            restored=first.checkpoints[0],
        )


def test_garbage_checkpoint_is_refused(tmp_path: Path) -> None:
    data = german_credit_parties()
    with pytest.raises(FunctionError, match="checkpoint"):
        run_builtin(
            "tabular-train",
            {"bank": data["bank.csv"], "bureau": data["bureau.csv"]},
            {"label_column": "default", "id_column": "applicant_id"},
            ("metrics",),
            tmp_path,
            restored=b"not a checkpoint",
        )
