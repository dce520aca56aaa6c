"""Image preprocessing on ``paddle.vision.transforms``: resize, normalise, augment.

A model records its :class:`ImageTransform` in its config, so predict, evaluate and serve prepare
images exactly as training did: scans of different sizes are resized to one ``image_size``
(bilinear, per channel, on float pixels in [0, 1]), then normalised per channel with ``mean`` and
``std``. Augmentation (``hflip``, ``vflip``) adds flipped copies of the training split once, before
training, so training stays deterministic and resumable; it never touches the test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from teeflow.functions.api import Context, FunctionError

__all__ = ["AUGMENTATIONS", "ImageTransform", "augment", "augment_arg", "transform_args"]

AUGMENTATIONS = ("hflip", "vflip")


@dataclass(frozen=True)
class ImageTransform:
    size: tuple[int, int] | None = None
    """(height, width) every image is resized to; ``None`` keeps sizes (they must then agree)."""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def resize(self, image: np.ndarray) -> np.ndarray:
        """One (H, W) or (H, W, C) float image resized to :attr:`size` (bilinear)."""
        if self.size is None or tuple(image.shape[:2]) == self.size:
            return image
        from paddle.vision.transforms import functional
        from PIL import Image

        height, width = self.size
        channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[2])]
        resized = [
            np.asarray(
                functional.resize(
                    Image.fromarray(np.asarray(ch, np.float32), mode="F"), [height, width]
                ),
                dtype=np.float32,
            )
            for ch in channels
        ]
        return resized[0] if image.ndim == 2 else np.stack(resized, axis=-1)

    def resize_batch(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) images resized to :attr:`size`."""
        if self.size is None or tuple(images.shape[2:]) == self.size:
            return images
        moved = images.transpose(0, 2, 3, 1)
        return np.stack([self.resize(image) for image in moved]).transpose(0, 3, 1, 2)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) images normalised per channel: ``(x - mean) / std``."""
        if self.mean is None or self.std is None:
            return images
        channels = images.shape[1]
        if len(self.mean) not in (1, channels):
            raise FunctionError(
                f"'mean' and 'std' give {len(self.mean)} values; the images have {channels} "
                "channel(s)"
            )
        from paddle.vision.transforms import functional

        mean = list(self.mean) * (channels if len(self.mean) == 1 else 1)
        std = list(self.std) * (channels if len(self.std) == 1 else 1)
        result = functional.normalize(images, mean, std, data_format="CHW")
        return np.ascontiguousarray(result, dtype=np.float32)

    def to_config(self) -> dict[str, Any]:
        return {
            "resize": list(self.size) if self.size else None,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ImageTransform:
        if not config:
            return cls()
        try:
            size = config.get("resize")
            mean, std = config.get("mean"), config.get("std")
            return cls(
                size=(int(size[0]), int(size[1])) if size else None,
                mean=tuple(float(v) for v in mean) if mean else None,
                std=tuple(float(v) for v in std) if std else None,
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise FunctionError("the model's image transform is malformed") from exc


def _floats(ctx: Context, name: str) -> tuple[float, ...] | None:
    value = ctx.arg(name)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not 1 <= len(values) <= 4 or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in values
    ):
        raise FunctionError(f"argument {name!r} must be 1 to 4 numbers, one per channel")
    return tuple(float(v) for v in values)


def transform_args(ctx: Context) -> ImageTransform:
    """``image_size`` (an int or [height, width], 4 to 1024), ``mean`` and ``std``."""
    size: Any = ctx.arg("image_size")
    if size is not None:
        pair = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 4 <= v <= 1024 for v in pair)
        ):
            raise FunctionError(
                "argument 'image_size' must be a size from 4 to 1024, or [height, width]"
            )
        size = (pair[0], pair[1])
    mean, std = _floats(ctx, "mean"), _floats(ctx, "std")
    if (mean is None) != (std is None) or (std is not None and min(std) <= 0):
        raise FunctionError("arguments 'mean' and 'std' go together, and 'std' must be positive")
    if mean is not None and std is not None and len(mean) != len(std):
        raise FunctionError("arguments 'mean' and 'std' need as many values each")
    return ImageTransform(size=size, mean=mean, std=std)


def augment_arg(ctx: Context) -> list[str]:
    value: Any = ctx.arg("augment", [])
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or not all(kind in AUGMENTATIONS for kind in kinds):
        raise FunctionError(
            f"argument 'augment' must be a list of {', '.join(AUGMENTATIONS)}, got {value!r}"
        )
    return sorted(set(kinds))


def augment(
    images: np.ndarray, labels: np.ndarray, kinds: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The (N, C, H, W) training images plus one flipped copy per kind, labels alongside."""
    if not kinds:
        return images, labels
    import paddle
    from paddle.vision.transforms import functional

    tensor = paddle.to_tensor(images)
    copies = [images]
    for kind in kinds:
        flipped = functional.hflip(tensor) if kind == "hflip" else functional.vflip(tensor)
        copies.append(flipped.numpy())
    return np.concatenate(copies), np.concatenate([labels] * len(copies))
