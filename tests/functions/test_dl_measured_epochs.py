"""A long run of short epochs measures loss and accuracy only in the epochs its metrics keep
(issue 16, P1-mlp: keeping every step's tensors for the epoch's metrics cost a few percent of the
training time), and its outputs are those of a run that measures every epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest_dl import Run, run_builtin

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl import training
from teeflow.functions.dl.training import (
    HISTORY_POINTS,
    TrainConfig,
    fit,
    history_epochs,
    thinned_history,
)

EPOCHS = 450
ROWS = "id,x,y\n" + "".join(f"{i},{i % 7 / 7},{i % 2}\n" for i in range(40))
ARGS = {"label_column": "y", "id_column": "id", "model": "logistic", "epochs": EPOCHS,
        "batch_size": 16, "seed": 0}  # fmt: skip


@pytest.mark.parametrize("epochs", [1, 2, 199, HISTORY_POINTS, HISTORY_POINTS + 1, 1500, 2000])
def test_history_epochs_are_those_the_thinned_history_keeps(epochs: int) -> None:
    full = [{"epoch": epoch} for epoch in range(1, epochs + 1)]
    assert history_epochs(epochs) == {record["epoch"] for record in thinned_history(full)}


def _train(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    every_epoch: bool,
    progress_every_s: float = float("inf"),
) -> tuple[Run, list[bool]]:
    measured: list[bool] = []
    batches = training._batches

    def counting(*args: object) -> tuple[float, float] | None:
        measured.append(bool(args[-1]))
        return batches(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "_batches", counting)
    # By default no epoch is measured for progress alone, however slow the machine.
    monkeypatch.setattr(training, "PROGRESS_EVERY_S", progress_every_s)
    if every_epoch:
        monkeypatch.setattr(training, "history_epochs", lambda n: frozenset(range(1, n + 1)))
    run = run_builtin("tabular-train", {"t": ROWS.encode()}, ARGS, ("model", "metrics"), tmp_path)
    monkeypatch.undo()
    return run, measured


def test_a_long_run_measures_only_the_kept_epochs_with_the_same_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every, every_measured = _train(tmp_path / "every", monkeypatch, every_epoch=True)
    kept, kept_measured = _train(tmp_path / "kept", monkeypatch, every_epoch=False)

    assert len(kept_measured) == len(every_measured) == EPOCHS
    assert sum(every_measured) == EPOCHS
    assert sum(kept_measured) == HISTORY_POINTS
    assert [p["epoch"] for p in kept.progress] == sorted(history_epochs(EPOCHS))
    # Same metrics (the same 200 epochs, the same loss and accuracy in each) and the same model.
    assert kept.outputs == every.outputs
    # Every epoch but the last is still checkpointed, measured or not.
    assert len(kept.checkpoints) == EPOCHS - 1


def test_progress_due_measures_an_epoch_without_adding_it_to_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, _ = _train(tmp_path / "kept", monkeypatch, every_epoch=False)
    paced, measured = _train(tmp_path / "paced", monkeypatch, every_epoch=False, progress_every_s=0)

    assert all(measured)  # progress is due after every epoch
    assert [p["epoch"] for p in paced.progress] == list(range(1, EPOCHS + 1))
    assert paced.outputs == kept.outputs  # the history lists the kept epochs only


def test_a_diverging_run_fails_with_a_clear_message(tmp_path: Path) -> None:
    def build() -> paddle.nn.Layer:
        layer = paddle.nn.Linear(1, 1)
        layer.weight.set_value(np.full([1, 1], np.nan, dtype=np.float32))
        return layer

    ctx = Context(inputs={}, args={}, outputs={}, scratch=tmp_path)
    config = TrainConfig(epochs=3, batch_size=4, learning_rate=0.01, seed=0, binary=True,
                         fingerprint="")  # fmt: skip
    features, labels = np.ones((8, 1), dtype=np.float32), np.arange(8) % 2
    diverged = r"training diverged by epoch 1 .*lower 'learning_rate'"
    with pytest.raises(FunctionError, match=diverged):
        fit(ctx, build_model=build, features=features, labels=labels, config=config)
