"""Registers the PaddlePaddle built-ins: image and tabular train / predict, evaluate."""
