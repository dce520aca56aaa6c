"""Shared helpers for the PaddlePaddle built-ins: data loading, models, training, metrics, blobs.

Nothing here writes outside ``ctx.scratch`` or reaches the network; every random choice is derived
from the task's ``seed`` argument so that a run, and a resumed run, are reproducible.
"""
