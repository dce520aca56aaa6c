"""``image-classify-predict``: classify images with an ``image-classify-train`` model.

Inputs: ``model`` and ``images`` (a ``.npz`` with ``images`` or ``test_images``, or a zip of image
files, PNG/JPEG/DICOM). Output: ``predictions``, a CSV with ``index``, ``name`` (file name in the
zip, or the array index), ``predicted`` class and one ``p_<class>`` probability column per class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.signatures import IMAGE_PREDICT
from teeflow.functions.dl.args import check_known, output_slots
from teeflow.functions.dl.images import load_unlabelled
from teeflow.functions.dl.metrics import softmax
from teeflow.functions.dl.modelfile import ModelBlob, load_weights
from teeflow.functions.dl.networks import build_image_model
from teeflow.functions.dl.training import predict_logits
from teeflow.functions.dl.transforms import ImageTransform


def _match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and images.shape[1] == 3:
        return np.asarray(images.mean(axis=1, keepdims=True), dtype=np.float32)
    raise FunctionError(f"the model takes {channels}-channel images, got {images.shape[1]}")


class ImageModel:
    """An ``image-classify-train`` model, loaded once (``image-serve`` keeps it for a session)."""

    def __init__(self, data: bytes) -> None:
        blob = ModelBlob.from_bytes(data, kind="image")
        self.config = blob.config
        self.classes = [str(name) for name in self.config["class_names"]]
        self.transform = ImageTransform.from_config(self.config.get("transform"))
        self.network = build_image_model(self.config)
        load_weights(self.network, blob.weights)

    def load(self, data: bytes, *, what: str) -> tuple[np.ndarray, list[str]]:
        """Unlabelled images from an input, resized as the model was trained."""
        return load_unlabelled(data, what=what, transform=self.transform)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities of (N, C, H, W) images, prepared as in training."""
        images = _match_channels(images, int(self.config["channels"]))
        size = self.config["image_size"]
        if list(images.shape[2:]) != list(size):
            raise FunctionError(
                f"the model takes {size[0]}x{size[1]} images, "
                f"got {images.shape[2]}x{images.shape[3]}; resize them first"
            )
        result: np.ndarray = softmax(predict_logits(self.network, self.transform.normalise(images)))
        return result

    def classify(self, images: np.ndarray, names: list[str]) -> pd.DataFrame:
        """``index``, ``name``, ``predicted`` and one ``p_<class>`` column per class."""
        probabilities = self.probabilities(images)
        table = pd.DataFrame({"index": np.arange(len(images)), "name": names})
        table["predicted"] = [self.classes[i] for i in probabilities.argmax(axis=1)]
        for i, name in enumerate(self.classes):
            table[f"p_{name}"] = probabilities[:, i].round(6)
        return table


def run(ctx: Context) -> None:
    check_known(ctx, IMAGE_PREDICT)
    outputs = output_slots(ctx, allowed=("predictions",), required_any=("predictions",))
    for slot in ("model", "images"):
        if slot not in ctx.inputs:
            raise FunctionError(f"image-classify-predict needs an input slot named {slot!r}")
    model = ImageModel(ctx.inputs["model"].read_bytes())
    images, names = model.load(ctx.inputs["images"].read_bytes(), what="input 'images'")
    table = model.classify(images, names)
    outputs["predictions"].write(table.to_csv(index=False).encode("utf-8"))
