"""Image loaders: MedMNIST-format ``.npz``, and zips of class-named folders (PNG/JPEG/DICOM).

Every loader returns float32 arrays in NCHW layout scaled to [0, 1]. A MedMNIST ``.npz`` holds
``train_images``/``train_labels`` (and ``val_*``, ``test_*``), images ``(N, H, W)`` or
``(N, H, W, C)`` uint8, labels ``(N, 1)``. A zip of folders names each image's class by its parent
folder (``malignant/0001.png``); it has no split of its own, so a seeded split makes one.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from teeflow.functions.api import FunctionError
from teeflow.functions.dl.state import check_zip
from teeflow.functions.dl.transforms import ImageTransform

__all__ = ["ImageSet", "load_images", "load_unlabelled", "split_holdout"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}
_DICOM_SUFFIXES = {".dcm", ".dicom"}


@dataclass
class ImageSet:
    """Splits of one or more image inputs; ``labels`` are class indices into ``class_names``."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """File names of unlabelled images from a zip, in order (empty for ``.npz``)."""


def _to_nchw(images: np.ndarray, *, what: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    else:
        raise FunctionError(f"{what}: expected images shaped (N, H, W) or (N, H, W, 1|3)")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return np.ascontiguousarray(images.astype(np.float32) / scale)


def _is_npz(data: bytes, *, what: str) -> bool:
    """Whether ``data`` is an ``.npz``; FunctionError for any zip beyond :func:`check_zip`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(archive, size=len(data), what=what)
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return bool(names) and all(name.endswith(".npy") for name in names)


def _npz_arrays(data: bytes, *, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise FunctionError(f"{what}: not a readable .npz archive") from exc


def _load_npz(data: bytes, *, what: str, transform: ImageTransform) -> ImageSet:
    arrays = _npz_arrays(data, what=what)
    result = ImageSet()
    for split in ("train", "val", "test"):
        if f"{split}_images" not in arrays:
            continue
        labels = arrays.get(f"{split}_labels")
        if labels is None:
            raise FunctionError(f"{what}: {split}_images has no {split}_labels")
        images = transform.resize_batch(_to_nchw(arrays[f"{split}_images"], what=what))
        flat = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)
        if len(flat) != len(images):
            raise FunctionError(f"{what}: {split}_images and {split}_labels differ in length")
        result.splits[split] = (images, flat)
    if "train" not in result.splits:
        raise FunctionError(f"{what}: a MedMNIST .npz needs train_images and train_labels")
    top = max(int(labels.max(initial=0)) for _, labels in result.splits.values())
    result.class_names = [str(i) for i in range(top + 1)]
    return result


def _decode(name: str, payload: bytes, *, what: str) -> np.ndarray:
    suffix = PurePosixPath(name).suffix.lower()
    try:
        if suffix in _DICOM_SUFFIXES:
            import pydicom

            pixels = pydicom.dcmread(io.BytesIO(payload)).pixel_array.astype(np.float32)
            low, high = float(pixels.min()), float(pixels.max())
            return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
        from PIL import Image

        with Image.open(io.BytesIO(payload)) as image:
            mode = "RGB" if image.mode in ("RGB", "RGBA", "P", "CMYK") else "L"
            return np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    except FunctionError:
        raise
    except Exception as exc:
        raise FunctionError(f"{what}: cannot decode image {name!r}") from exc


def _image_members(data: bytes, *, what: str) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(archive, size=len(data), what=what)
            members = [
                (info.filename, archive.read(info))
                for info in archive.infolist()
                if not info.is_dir()
                and PurePosixPath(info.filename).suffix.lower() in _IMAGE_SUFFIXES | _DICOM_SUFFIXES
                and not PurePosixPath(info.filename).name.startswith(".")
                and "__MACOSX" not in info.filename
            ]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FunctionError(f"{what}: expected a MedMNIST .npz or a zip of image folders") from exc
    if not members:
        raise FunctionError(f"{what}: the zip holds no PNG, JPEG or DICOM images")
    return sorted(members)


def _stack(decoded: list[np.ndarray], *, what: str, transform: ImageTransform) -> np.ndarray:
    decoded = [transform.resize(image) for image in decoded]
    shapes = {image.shape for image in decoded}
    if len(shapes) != 1:
        raise FunctionError(
            f"{what}: images differ in size {sorted(shapes)}; set the argument 'image_size' "
            "to resize them to one size"
        )
    stacked = np.stack(decoded)
    return _to_nchw(stacked, what=what)


def _load_folders(data: bytes, *, what: str, transform: ImageTransform) -> ImageSet:
    members = _image_members(data, what=what)
    classes = sorted({PurePosixPath(name).parent.name for name, _ in members})
    if "" in classes:
        raise FunctionError(f"{what}: every image must sit in a folder named after its class")
    images = _stack(
        [_decode(name, payload, what=what) for name, payload in members],
        what=what,
        transform=transform,
    )
    labels = np.array(
        [classes.index(PurePosixPath(name).parent.name) for name, _ in members], dtype=np.int64
    )
    return ImageSet(splits={"all": (images, labels)}, class_names=classes)


def split_holdout(
    images: np.ndarray, labels: np.ndarray, *, fraction: float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A seeded (train, test) split of one labelled array pair."""
    order = np.random.RandomState(seed).permutation(len(images))
    cut = len(images) - max(1, round(len(images) * fraction))
    train, test = order[:cut], order[cut:]
    return (images[train], labels[train]), (images[test], labels[test])


def load_images(data: bytes, *, what: str, transform: ImageTransform | None = None) -> ImageSet:
    """One labelled image input (``.npz`` or zip of class folders), resized by ``transform``."""
    transform = transform or ImageTransform()
    if _is_npz(data, what=what):
        return _load_npz(data, what=what, transform=transform)
    return _load_folders(data, what=what, transform=transform)


def load_unlabelled(
    data: bytes, *, what: str, transform: ImageTransform | None = None
) -> tuple[np.ndarray, list[str]]:
    """Images to predict: ``.npz`` (``images`` or ``test_images``) or any zip of images, resized
    by ``transform``."""
    transform = transform or ImageTransform()
    if _is_npz(data, what=what):
        arrays = _npz_arrays(data, what=what)
        for key in ("images", "test_images", "train_images"):
            if key in arrays:
                images = transform.resize_batch(_to_nchw(arrays[key], what=what))
                return images, [str(i) for i in range(len(images))]
        raise FunctionError(f"{what}: the .npz has no 'images' or 'test_images' array")
    members = _image_members(data, what=what)
    decoded = [_decode(name, payload, what=what) for name, payload in members]
    return _stack(decoded, what=what, transform=transform), [name for name, _ in members]
