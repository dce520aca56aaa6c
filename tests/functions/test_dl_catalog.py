"""The PaddlePaddle built-ins' catalogue entries and the bundled demo data."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from teeflow.functions.datasets import (
    BUREAU_COLUMNS,
    breast_cancer_hospitals,
    digits_hospitals,
    german_credit_parties,
)
from teeflow.functions.registry import builtin_catalogue

DL_BUILTINS = {
    "image-classify-train": ("model", "metrics"),
    "image-classify-predict": ("predictions",),
    "tabular-train": ("model", "metrics", "metrics_public"),
    "tabular-predict": ("predictions",),
    "evaluate": ("metrics",),
}


@pytest.mark.parametrize("name", sorted(DL_BUILTINS))
def test_catalogue_entry_matches_its_module(name: str) -> None:
    builtin = builtin_catalogue()[name]

    assert builtin.outputs == DL_BUILTINS[name]
    assert len(builtin.code_sha256) == 64 and callable(builtin.load())


def test_breast_cancer_hospitals_split_patients_without_overlap() -> None:
    files = {
        name: pd.read_csv(io.BytesIO(data)) for name, data in breast_cancer_hospitals().items()
    }

    ids = [
        set(files[n]["patient_id"])
        for n in ("hospital_a.csv", "hospital_b.csv", "new_patients.csv")
    ]
    assert sum(len(i) for i in ids) == 569 and len(set.union(*ids)) == 569
    assert "malignant" not in files["new_patients.csv"]
    assert set(files["hospital_a.csv"]["malignant"]) == {0, 1}


def test_digits_are_medmnist_format() -> None:
    files = digits_hospitals()

    with np.load(io.BytesIO(files["hospital_a.npz"]), allow_pickle=False) as archive:
        assert {"train_images", "val_labels", "test_labels"} <= set(archive.files)
        assert archive["train_images"].dtype == np.uint8
        assert archive["train_labels"].shape[1] == 1


def test_german_credit_is_split_by_columns_with_partial_id_overlap() -> None:
    files = german_credit_parties()
    bank, bureau = (pd.read_csv(io.BytesIO(files[n])) for n in ("bank.csv", "bureau.csv"))

    shared = set(bank["applicant_id"]) & set(bureau["applicant_id"])
    assert 700 < len(shared) < min(len(bank), len(bureau)) < 1000
    assert set(bureau.columns) == {"applicant_id", *BUREAU_COLUMNS}
    assert not set(BUREAU_COLUMNS) & set(bank.columns) and "default" in bank.columns
