"""The networks the built-ins train: small CNN and ResNet-18 for images, logistic / MLP for tables.

Each is built from a JSON-able config so that a predictor can rebuild it from a model blob. No layer
uses dropout or other randomness during training, which keeps resumed runs bit-identical.
"""

from __future__ import annotations

from typing import Any

import paddle
from paddle import nn

from teeflow.functions.api import FunctionError

__all__ = ["IMAGE_MODELS", "TABULAR_MODELS", "build_image_model", "build_tabular_model"]

IMAGE_MODELS = ("cnn", "resnet18")
TABULAR_MODELS = ("logistic", "mlp")


class SmallCNN(nn.Layer):
    """Two conv blocks and a linear head; works from 8x8 (digits) to 224x224 inputs.

    ``norm="group"`` (GroupNorm, 8 groups) replaces BatchNorm for DP-SGD, whose per-example
    gradients BatchNorm's mixing of examples within a batch would break (functions/dl/dp.py)."""

    def __init__(self, in_channels: int, num_classes: int, norm: str = "batch") -> None:
        super().__init__()

        def normalise(width: int) -> nn.Layer:
            return nn.GroupNorm(8, width) if norm == "group" else nn.BatchNorm2D(width)

        self.features = nn.Sequential(
            nn.Conv2D(in_channels, 32, 3, padding=1),
            normalise(32),
            nn.ReLU(),
            nn.Conv2D(32, 64, 3, padding=1),
            normalise(64),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.AdaptiveAvgPool2D(4),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, num_classes)
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        result: paddle.Tensor = self.head(self.features(x))
        return result


def _resnet18(in_channels: int, num_classes: int) -> nn.Layer:
    from paddle.vision.models import resnet18

    model = resnet18(num_classes=num_classes)
    if in_channels != 3:
        # Grey-scale scans: replace the stem so the network takes their one channel as is.
        model.conv1 = nn.Conv2D(in_channels, 64, 7, stride=2, padding=3, bias_attr=False)
    return model


def build_image_model(config: dict[str, Any]) -> nn.Layer:
    name, channels, classes = config["model"], int(config["channels"]), int(config["num_classes"])
    if name == "cnn":
        return SmallCNN(channels, classes, norm=str(config.get("norm", "batch")))
    if name == "resnet18":
        return _resnet18(channels, classes)
    raise FunctionError(f"unknown image model {name!r}; choose one of {', '.join(IMAGE_MODELS)}")


class MLP(nn.Layer):
    def __init__(self, in_features: int, hidden: list[int], outputs: int = 1) -> None:
        super().__init__()
        layers: list[nn.Layer] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        result: paddle.Tensor = self.net(x)
        return result


def build_tabular_model(config: dict[str, Any]) -> nn.Layer:
    """One output logit for 0/1 labels, one per class when ``config["class_names"]`` lists 3 or
    more: ``logistic`` is a single linear layer (softmax regression for classes), ``mlp`` adds
    ReLU hidden layers."""
    name, width = config["model"], int(config["in_features"])
    classes = config.get("class_names") or []
    outputs = len(classes) if len(classes) > 2 else 1
    if name == "logistic":
        return MLP(width, [], outputs)
    if name == "mlp":
        return MLP(width, [int(size) for size in config["hidden"]], outputs)
    raise FunctionError(
        f"unknown tabular model {name!r}; choose one of {', '.join(TABULAR_MODELS)}"
    )
