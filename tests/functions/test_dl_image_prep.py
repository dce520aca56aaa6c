"""Images of different sizes (resize / normalise / augment on paddle.vision.transforms), class
folders checked across parties before training, evaluate for image models, and bounded zips."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import FunctionError
from teeflow.functions.datasets import toy_scans
from teeflow.functions.dl.images import load_images
from teeflow.functions.dl.modelfile import ModelBlob

FAST = {"epochs": 3, "batch_size": 16, "seed": 0, "learning_rate": 0.01}


def scans(classes: tuple[str, str] = ("top", "bottom"), n: int = 10, sizes=(12, 20)) -> bytes:
    return toy_scans(classes, n=n, sizes=sizes, seed=len(classes[0]) + n)


def test_mixed_sizes_train_predict_evaluate_with_image_size(tmp_path: Path) -> None:
    args = {**FAST, "image_size": 16, "mean": [0.5], "std": [0.25], "augment": ["hflip"]}
    train = run_builtin(
        "image-classify-train",
        {"a": scans(sizes=(12, 20)), "b": scans(sizes=(30, 9))},
        {**args, "report_class_counts": True},
        ("model", "metrics"),
        tmp_path,
    )
    predicted = run_builtin(
        "image-classify-predict",
        {"model": train.outputs["model"], "images": scans(n=4, sizes=(40, 7))},
        {},
        ("predictions",),
        tmp_path,
    )
    evaluated = run_builtin(
        "evaluate",
        {"model": train.outputs["model"], "images": scans(n=6, sizes=(25,))},
        {},
        ("metrics",),
        tmp_path,
    ).json("metrics")

    metrics = train.json("metrics")
    assert metrics["n_train"] == 2 * 32  # 16 training images per input, doubled by hflip
    assert metrics["class_counts_per_input"] == {
        "a": {"bottom": 10, "top": 10},
        "b": {"bottom": 10, "top": 10},
    }
    assert b"predicted" in predicted.outputs["predictions"]
    assert set(evaluated) >= {"accuracy", "auc", "confusion_matrix", "per_class_recall"}
    assert evaluated["n"] == 12 and evaluated["auc_kind"] == "binary"
    assert np.array(evaluated["confusion_matrix"]).sum() == 12


def test_class_counts_are_reported_only_when_the_contract_says_so(tmp_path: Path) -> None:
    run = run_builtin(
        "image-classify-train", {"a": scans(sizes=(8,))}, FAST, ("metrics",), tmp_path
    )

    assert "class_counts_per_input" not in run.json("metrics")


def test_mixed_sizes_without_image_size_say_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match="set the argument 'image_size'"):
        run_builtin("image-classify-train", {"a": scans()}, FAST, ("metrics",), tmp_path)


@pytest.mark.parametrize(
    ("b_classes", "message"),
    [
        (("Top", "bottom"), r"spelt differently across inputs \('Top' in b; 'top' in a\)"),
        (("top", "Bottom_"), r"spelt differently.*'Bottom_' in b; 'bottom' in a"),
        (("top", "middle"), r"input 'a' has no images of class\(es\) \['middle'\]"),
    ],
)
def test_class_folders_that_differ_across_parties_are_refused_before_training(
    tmp_path: Path, b_classes: tuple[str, str], message: str
) -> None:
    with pytest.raises(FunctionError, match=message):
        run_builtin(
            "image-classify-train",
            {"a": scans(sizes=(8,)), "b": scans(b_classes, sizes=(8,))},
            FAST,
            ("metrics",),
            tmp_path,
        )


def _bomb(expanded: int) -> bytes:
    buffer = io.BytesIO()
    block = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("scans/top/a.png", "w", force_zip64=True) as member,
    ):
        for _ in range(expanded >> 20):
            member.write(block)
    return buffer.getvalue()


def test_a_small_zip_that_expands_to_gigabytes_is_refused_before_reading() -> None:
    bomb = _bomb(1 << 30)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 << 20

    started = time.process_time()
    for load in (
        lambda: load_images(bomb, what="input 'a'"),
        lambda: ModelBlob.from_bytes(bomb, kind="image"),
    ):
        with pytest.raises(FunctionError, match="would expand to 1024 MiB, more than"):
            load()
    assert time.process_time() - started < 5  # nothing was inflated (CPU, not wall time)


def test_a_zip_that_lies_about_its_size_fails_its_check(tmp_path: Path) -> None:
    honest = scans(n=1, sizes=(8,))
    lied = bytearray(honest)
    # shrink the declared size of the first member in its central directory entry
    at = lied.rfind(b"PK\x01\x02")
    lied[at + 24 : at + 28] = (10).to_bytes(4, "little")

    with pytest.raises(FunctionError):
        load_images(bytes(lied), what="input 'a'")
