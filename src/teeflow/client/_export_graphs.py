"""The Paddle layers an exported model is saved as: teeflow's preprocessing, then the network.

Imported only by client/_models.py when a member exports a model (Paddle loads slowly).
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

__all__ = ["ImageGraph", "TableGraph"]


class TableGraph(nn.Layer):
    """Raw features in (float64, numbers first, then one category index per text column, in
    the model's column order), class probabilities out: a missing (NaN) number becomes the
    training mean, numbers are standardised in float64 as ``Preprocessor.transform`` does, a
    category index is one-hot encoded (an index outside the categories, e.g. -1 for an unseen
    value, encodes as all zeros), then the network; float64 sigmoid (0/1 model, one column: the
    positive class) or softmax (one column per class)."""

    def __init__(self, preprocessor: Any, network: nn.Layer, *, multiclass: bool) -> None:
        super().__init__()
        self.network = network
        self.multiclass = multiclass
        numeric = list(preprocessor.numeric.values())
        self.n_numeric = len(numeric)
        self.widths = [len(categories) for categories in preprocessor.categorical.values()]
        self.register_buffer(
            "means", paddle.to_tensor([[m for m, _ in numeric] or [0.0]], dtype="float64")
        )
        self.register_buffer(
            "stds", paddle.to_tensor([[s for _, s in numeric] or [1.0]], dtype="float64")
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        blocks = []
        if self.n_numeric:
            numbers = x[:, : self.n_numeric]
            filled = paddle.where(paddle.isnan(numbers), self.means.expand_as(numbers), numbers)
            blocks.append(((filled - self.means) / self.stds).astype("float32"))
        start = self.n_numeric
        for width in self.widths:
            codes = paddle.arange(width, dtype="float64").unsqueeze(0)
            blocks.append((x[:, start : start + 1] == codes).astype("float32"))
            start += 1
        # float64 from the logits on, as TabularModel.probabilities computes them
        logits = self.network(paddle.concat(blocks, axis=1)).astype("float64")
        if self.multiclass:
            result: paddle.Tensor = nn.functional.softmax(logits, axis=1)
        else:
            result = nn.functional.sigmoid(logits)
        return result


class ImageGraph(nn.Layer):
    """(N, C, H, W) float32 pixels in [0, 1] at the model's image size in, class probabilities
    out: per-channel normalisation as ``ImageTransform.normalise``, the network, softmax."""

    def __init__(self, network: nn.Layer, transform: Any, *, channels: int) -> None:
        super().__init__()
        self.network = network
        mean = list(transform.mean or [0.0])
        std = list(transform.std or [1.0])
        mean, std = (v * channels if len(v) == 1 else v for v in (mean, std))
        self.register_buffer("mean", paddle.to_tensor(mean, dtype="float32").reshape([1, -1, 1, 1]))
        self.register_buffer("std", paddle.to_tensor(std, dtype="float32").reshape([1, -1, 1, 1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        result: paddle.Tensor = nn.functional.softmax(
            self.network((x - self.mean) / self.std), axis=1
        )
        return result
