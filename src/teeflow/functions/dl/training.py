"""The one training loop every built-in trainer uses: seeded, resumable, checkpointed after any
epoch when the executor says one is due (``ctx.checkpoint_due()``: paced, decision 0005).

Determinism: ``paddle.seed`` fixes weight initialisation, a ``numpy.random.RandomState`` seeded from
the task's seed shuffles the batches, and no layer draws random numbers while training (no dropout),
so the RNG state that matters is the shuffler's, which every checkpoint carries. A run resumed from
the checkpoint of epoch ``k`` therefore repeats epochs ``k+1..n`` exactly (bit-equal on CPU).

Paddle names parameters and optimizer accumulators from a process-wide counter; model and optimizer
are built under ``unique_name.guard()`` so the names, and thus the optimizer state keys in a
checkpoint, are the same in every run.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.state import TrainState, tensor_arrays

__all__ = [
    "HISTORY_POINTS",
    "PROGRESS_EVERY_S",
    "TrainConfig",
    "TrainResult",
    "checkpoint_training",
    "fit",
    "history_epochs",
    "predict_logits",
    "restore_training",
    "seed_everything",
    "thinned_history",
]

HISTORY_POINTS = 200
"""Most epochs a metrics output lists: a declared metrics output is at most 64 KiB, and a
per-epoch record is about 60 bytes, so 2,000 epochs would not fit (functions/outputs.py)."""

PROGRESS_EVERY_S = 1.0
"""Longest wait between two measured (and reported) epochs of :func:`fit`, in seconds; the
executor sends at most one progress event a second anyway (enclave/function_run.py)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    binary: bool
    """One logit and binary cross-entropy (tabular) or one logit per class and softmax (images)."""
    fingerprint: str
    """Hash of every setting and input a checkpoint is only valid for."""


@dataclass
class TrainResult:
    model: paddle.nn.Layer
    history: list[dict[str, Any]]
    resumed_from_epoch: int


def thinned_history(
    history: list[dict[str, Any]], limit: int = HISTORY_POINTS
) -> list[dict[str, Any]]:
    """At most ``limit`` of the per-epoch records, evenly spaced, the first and last always kept
    (each record keeps its ``epoch``, so a reader sees which epochs are listed)."""
    if len(history) <= limit:
        return list(history)
    step = (len(history) - 1) / (limit - 1)
    return [history[round(i * step)] for i in range(limit)]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


@contextmanager
def _fresh_names() -> Iterator[None]:
    with paddle.utils.unique_name.guard():
        yield


def _loss(logits: paddle.Tensor, labels: paddle.Tensor, binary: bool) -> paddle.Tensor:
    if binary:
        return paddle.nn.functional.binary_cross_entropy_with_logits(
            logits.squeeze(-1), labels.astype("float32")
        )
    return paddle.nn.functional.cross_entropy(logits, labels.astype("int64"))


def _correct(logits: paddle.Tensor, labels: np.ndarray, binary: bool) -> int:
    values = logits.numpy()
    predicted = (values[:, 0] > 0).astype(np.int64) if binary else values.argmax(axis=1)
    return int((predicted == labels).sum())


def history_epochs(epochs: int, limit: int = HISTORY_POINTS) -> frozenset[int]:
    """The epochs (1-based) :func:`thinned_history` keeps of a run of ``epochs`` epochs: every
    epoch up to ``limit`` epochs, else ``limit`` evenly spaced ones, the first and last always."""
    if epochs <= limit:
        return frozenset(range(1, epochs + 1))
    step = (epochs - 1) / (limit - 1)
    return frozenset(round(i * step) + 1 for i in range(limit))


def fit(
    ctx: Context,
    *,
    build_model: Callable[[], paddle.nn.Layer],
    features: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
) -> TrainResult:
    """Train ``build_model()`` on ``features``/``labels``, resuming from ``ctx.restore()``.

    The epoch's mean loss and accuracy are measured in the epochs the history keeps
    (:func:`history_epochs`, every epoch of a run up to ``HISTORY_POINTS`` epochs) and in the
    first epoch that ends at least ``PROGRESS_EVERY_S`` seconds after the last measured one;
    each measured epoch is reported with ``ctx.progress(epoch, epochs, loss, accuracy)``.
    Measuring keeps every step's loss and output alive until the epoch's end, a few percent of
    a short epoch's time (issue 16, P1-mlp), so a long run of short epochs measures only these.
    Writes ``ctx.checkpoint`` after an epoch whenever the executor says one is due.

    Raises FunctionError when a measured epoch's loss is not finite (the training diverged).
    """
    seed_everything(config.seed)
    kept = history_epochs(config.epochs)
    with _fresh_names(), warnings.catch_warnings():
        # Paddle's BatchNorm warns on every training-mode forward that it tracks running
        # statistics (paddle/nn/layer/norm.py); that is the behaviour we want.
        warnings.filterwarnings("ignore", "When training, we now always track", UserWarning)
        model = build_model()
        optimizer = paddle.optimizer.Adam(
            learning_rate=config.learning_rate, parameters=model.parameters()
        )
        shuffler = np.random.RandomState(config.seed)
        history, start = restore_training(ctx, model, optimizer, shuffler, config)
        measured_at = time.monotonic()
        model.train()
        for epoch in range(start + 1, config.epochs + 1):
            measure = epoch in kept or time.monotonic() - measured_at >= PROGRESS_EVERY_S
            result = _batches(model, optimizer, shuffler, features, labels, config, measure)
            if result is not None:
                measured_at = time.monotonic()
                loss, accuracy = result
                if not math.isfinite(loss):
                    raise FunctionError(
                        f"training diverged by epoch {epoch} (the loss is not a finite "
                        "number); lower 'learning_rate'"
                    )
                record = {"epoch": epoch, "loss": round(loss, 6), "accuracy": round(accuracy, 6)}
                if epoch in kept:
                    history.append(record)
                ctx.progress(epochs=config.epochs, **record)
            if epoch == config.epochs or not ctx.checkpoint_due():
                continue  # the last epoch's state is the model itself
            checkpoint_training(ctx, epoch, model, optimizer, shuffler, history, config)
    model.eval()
    return TrainResult(model=model, history=history, resumed_from_epoch=start)


def restore_training(
    ctx: Context,
    model: paddle.nn.Layer,
    optimizer: paddle.optimizer.Optimizer,
    rng: np.random.RandomState,
    config: TrainConfig,
) -> tuple[list[dict[str, Any]], int]:
    """Load ``ctx.restore()`` (a TrainState) into model, optimizer and ``rng``; return the
    history so far and the last finished epoch ([] and 0 without a checkpoint).

    Raises FunctionError when the checkpoint was made for another training setup."""
    restored = ctx.restore()
    if restored is None:
        return [], 0
    state = TrainState.from_bytes(restored)
    if state.config_fingerprint != config.fingerprint:
        raise FunctionError(
            "the checkpoint belongs to a different training setup; start the task afresh"
        )
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in state.model.items()})
    optimizer.set_state_dict({k: paddle.to_tensor(v) for k, v in state.optimizer.items()})
    rng.set_state(state.rng)
    return list(state.history), state.epoch


def checkpoint_training(
    ctx: Context,
    epoch: int,
    model: paddle.nn.Layer,
    optimizer: paddle.optimizer.Optimizer,
    rng: np.random.RandomState,
    history: list[dict[str, Any]],
    config: TrainConfig,
) -> None:
    """``ctx.checkpoint`` the state after ``epoch``, as :func:`restore_training` reads it."""
    ctx.checkpoint(
        TrainState(
            epoch=epoch,
            model=tensor_arrays(model.state_dict()),
            optimizer=tensor_arrays(optimizer.state_dict()),
            rng=rng.get_state(legacy=False),
            history=history,
            config_fingerprint=config.fingerprint,
        ).to_bytes()
    )


def _batches(
    model: paddle.nn.Layer,
    optimizer: paddle.optimizer.Optimizer,
    shuffler: np.random.RandomState,
    features: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    measure: bool,
) -> tuple[float, float] | None:
    """One epoch of steps; with ``measure``, its mean loss and accuracy over the steps."""
    order = shuffler.permutation(len(features))
    # A measured epoch keeps the step's tensors and reads them back once at its end, not with a
    # .numpy() per batch (a wait and a copy per step that a plain training loop does not make).
    losses: list[paddle.Tensor] = []
    outputs: list[paddle.Tensor] = []
    sizes: list[int] = []
    for begin in range(0, len(order), config.batch_size):
        index = order[begin : begin + config.batch_size]
        batch_x = paddle.to_tensor(features[index])
        logits = model(batch_x)
        loss = _loss(logits, paddle.to_tensor(labels[index]), config.binary)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        if measure:
            losses.append(loss.detach())
            outputs.append(logits.detach())
            sizes.append(len(index))
    if not measure:
        return None
    if not sizes:
        return 0.0, 0.0
    total_loss = 0.0
    for value, size in zip(paddle.stack(losses).numpy().tolist(), sizes, strict=True):
        total_loss += value * size  # the same float64 sum, in the same order, as batch by batch
    correct = _correct(paddle.concat(outputs), labels[order], config.binary)
    return total_loss / len(order), correct / len(order)


def predict_logits(
    model: paddle.nn.Layer, features: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """Model outputs for ``features`` in evaluation mode, as float64 numpy."""
    model.eval()
    chunks = []
    with paddle.no_grad():
        for begin in range(0, len(features), batch_size):
            chunks.append(model(paddle.to_tensor(features[begin : begin + batch_size])).numpy())
    if not chunks:
        return np.zeros((0, 1))
    return np.concatenate(chunks).astype(np.float64)
