"""``image-serve``: an online inference session over an ``image-classify-train`` model.

Input: ``model`` only. The enclave loads the model once and answers each requester's sealed
requests (see enclave/session.py) until the session is canceled or reaches a limit. Output:
``usage``, written by the enclave when the session ends (request counts, never contents).

A request is what ``image-classify-predict`` takes as ``images``: a ``.npz`` with ``images`` (or
``test_images``), or a zip of PNG/JPEG/DICOM files. The answer is
``{"predictions": [{"index": i, "name": …, "predicted": class, "p_<class>": p, ...}, ...]}``: the
rows ``image-classify-predict`` writes for those images.
"""

from __future__ import annotations

from typing import Any

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.image_predict import ImageModel
from teeflow.functions.builtins.signatures import IMAGE_SERVE
from teeflow.functions.dl.args import check_known
from teeflow.functions.serving import check_rows


def run(ctx: Context) -> None:
    raise FunctionError(
        "image-serve runs as an inference session: run the task and send it requests "
        "(Client.open_session(...).request)"
    )


def open_session(ctx: Context) -> ImagePredictor:
    """Check the arguments and load the model once (see functions/serving.py)."""
    check_known(ctx, IMAGE_SERVE)
    if set(ctx.inputs) != {"model"}:
        raise FunctionError("image-serve takes exactly one input, the slot 'model'")
    return ImagePredictor(ImageModel(ctx.inputs["model"].read_bytes()))


class ImagePredictor:
    """Classifies the images of one request with the model it holds."""

    def __init__(self, model: ImageModel) -> None:
        self.model = model

    def predict(self, request: bytes, *, max_rows: int) -> dict[str, Any]:
        images, names = self.model.load(request, what="the request")
        check_rows(len(images), max_rows)
        table = self.model.classify(images, names)
        return {"predictions": table.to_dict("records")}
