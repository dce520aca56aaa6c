"""Image loaders (MedMNIST .npz, zip of folders with PNG/JPEG/DICOM) and the image built-ins."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest_dl import run_builtin
from PIL import Image

from teeflow.functions.api import FunctionError
from teeflow.functions.datasets import digits_hospitals
from teeflow.functions.dl.images import load_images, load_unlabelled


def _png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _dicom(array: np.ndarray) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.set_pixel_data(
        array.astype(np.uint16), photometric_interpretation="MONOCHROME2", bits_stored=12
    )
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _folders(n_per_class: int = 12, size: int = 8) -> bytes:
    """Two visually separable classes: bright top half vs bright bottom half, PNG and JPEG."""
    rng = np.random.RandomState(0)
    members = {}
    for i in range(n_per_class):
        top = (rng.rand(size, size) * 60).astype(np.uint8)
        top[: size // 2] += 180
        members[f"scans/top/{i:03d}.png"] = _png(top)
        members[f"scans/bottom/{i:03d}.jpg"] = _png(np.flipud(top).copy(), "JPEG")
    return _zip(members)


def test_npz_loader_reads_medmnist_layout() -> None:
    data = digits_hospitals()["hospital_a.npz"]

    images = load_images(data, what="a")

    assert set(images.splits) == {"train", "val", "test"}
    x, y = images.splits["train"]
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert y.ndim == 1 and images.class_names == [str(i) for i in range(10)]


def test_zip_of_folders_loader_reads_png_and_jpeg_classes() -> None:
    images = load_images(_folders(), what="a")

    x, y = images.splits["all"]
    assert images.class_names == ["bottom", "top"]
    assert x.shape == (24, 1, 8, 8)
    assert sorted(np.bincount(y).tolist()) == [12, 12]


def test_dicom_in_zip_is_decoded_and_scaled() -> None:
    pixels = np.arange(64, dtype=np.uint16).reshape(8, 8) * 40
    data = _zip({"cases/ct/a.dcm": _dicom(pixels), "cases/mr/b.dcm": _dicom(pixels.T.copy())})

    images = load_images(data, what="a")

    x, y = images.splits["all"]
    assert images.class_names == ["ct", "mr"]
    assert x.shape == (2, 1, 8, 8)
    assert x[0, 0, 0, 0] == 0.0 and x[0, 0, -1, -1] == pytest.approx(1.0)
    assert y.tolist() == [0, 1]


def test_zip_without_images_is_rejected() -> None:
    with pytest.raises(FunctionError, match="no PNG, JPEG or DICOM"):
        load_images(_zip({"readme.txt": b"hi"}), what="input 'a'")


def test_unlabelled_zip_keeps_file_names() -> None:
    images, names = load_unlabelled(_folders(2), what="images")

    assert images.shape == (4, 1, 8, 8)
    assert names[0] == "scans/bottom/000.jpg"


def test_image_train_and_predict_on_two_hospitals(tmp_path: Path) -> None:
    data = digits_hospitals()

    train = run_builtin(
        "image-classify-train",
        {"hospital_a": data["hospital_a.npz"], "hospital_b": data["hospital_b.npz"]},
        {"epochs": 2, "batch_size": 64, "seed": 1},
        ("model", "metrics"),
        tmp_path,
    )
    predict = run_builtin(
        "image-classify-predict",
        {"model": train.outputs["model"], "images": data["hospital_b.npz"]},
        {},
        ("predictions",),
        tmp_path,
    )

    metrics = train.json("metrics")
    assert [p["epoch"] for p in train.progress] == [1, 2]
    assert {"epoch", "epochs", "loss", "accuracy"} <= set(train.progress[0])
    assert len(train.checkpoints) == 1  # after epoch 1; the last epoch's state is the model
    assert metrics["test_accuracy"] > 0.8
    assert metrics["test"]["auc"] > 0.95 and len(metrics["test"]["per_class_recall"]) == 10
    assert np.asarray(metrics["test"]["confusion_matrix"]).shape == (10, 10)
    with zipfile.ZipFile(io.BytesIO(train.outputs["model"])) as blob:
        assert {"config.json", "weights.npz", "inference/model.pdiparams"} <= set(blob.namelist())
    rows = list(csv.DictReader(io.StringIO(predict.outputs["predictions"].decode())))
    assert len(rows) == 180 and rows[0]["predicted"] in [str(i) for i in range(10)]
    assert sum(float(rows[0][f"p_{i}"]) for i in range(10)) == pytest.approx(1.0, abs=1e-4)


def test_resnet18_trains_on_one_channel_folders(tmp_path: Path) -> None:
    run = run_builtin(
        "image-classify-train",
        {"clinic": _folders(n_per_class=6, size=16)},
        {"model": "resnet18", "epochs": 1, "batch_size": 8, "test_fraction": 0.25},
        ("metrics",),
        tmp_path,
    )

    metrics = run.json("metrics")
    assert metrics["model"] == "resnet18" and metrics["n_test"] == 3
    assert set(metrics["test"]["per_class_recall"]) == {"bottom", "top"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"model": "vgg"}, "'model' must be one of"),
        ({"epochs": 0}, "'epochs' must be between"),
        ({"learning_rate": "fast"}, "'learning_rate' must be a number"),
        ({"epoch": 3}, "unknown argument"),
    ],
)
def test_image_train_rejects_bad_arguments(tmp_path: Path, args: dict, message: str) -> None:
    with pytest.raises(FunctionError, match=message):
        run_builtin("image-classify-train", {"a": _folders(2)}, args, ("metrics",), tmp_path)


def test_image_predict_rejects_a_tabular_model(tmp_path: Path) -> None:
    not_image = _zip(
        {"config.json": b'{"format": "teeflow-model/1", "kind": "tabular"}', "weights.npz": b""}
    )
    with pytest.raises(FunctionError, match="is a 'tabular' model"):
        run_builtin(
            "image-classify-predict",
            {"model": not_image, "images": _folders(2)},
            {},
            ("predictions",),
            tmp_path,
        )
