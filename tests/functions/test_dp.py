"""DP-SGD on Paddle against a per-example numpy reference, and its accounting against
dp-accounting's RDP accountant computed independently here."""

from __future__ import annotations

from pathlib import Path

import dp_accounting
import numpy as np
import paddle
import pytest
from conftest_dl import run_builtin
from dp_accounting import rdp

from teeflow.functions.api import Context, FunctionError, OutputData
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.dl.dp import (
    RDP_ORDERS,
    DPSettings,
    calibrate,
    fit_private,
    noisy_gradient,
    per_example_gradients,
    per_example_gradients_loop,
)
from teeflow.functions.dl.networks import MLP
from teeflow.functions.dl.training import TrainConfig


def _binary_loss(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    return paddle.nn.functional.binary_cross_entropy_with_logits(
        logits.squeeze(-1), labels.astype("float32"), reduction="none"
    )


def _data(n: int = 9, width: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(3)
    return rng.randn(n, width).astype(np.float32), (rng.rand(n) > 0.5).astype(np.int64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1 / (1 + np.exp(-z))
    return result


def _numpy_reference(model: MLP, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Per-example gradients of binary cross-entropy by hand, for a 0- or 1-hidden-layer MLP."""
    weights = [p.numpy().astype(np.float64) for p in model.parameters()]
    x64 = x.astype(np.float64)
    if len(weights) == 2:
        w, b = weights
        d = _sigmoid(x64 @ w + b)[:, 0] - y  # dL_i/dz_i
        return [np.einsum("ni,n->ni", x64, d)[:, :, None], d[:, None]]
    w1, b1, w2, b2 = weights
    pre = x64 @ w1 + b1
    hidden = np.maximum(pre, 0)
    d2 = _sigmoid(hidden @ w2 + b2)[:, 0] - y
    d1 = (d2[:, None] * w2[:, 0][None, :]) * (pre > 0)
    return [
        np.einsum("ni,nj->nij", x64, d1),
        d1,
        np.einsum("ni,n->ni", hidden, d2)[:, :, None],
        d2[:, None],
    ]


@pytest.mark.parametrize("hidden", [[], [4]], ids=["logistic", "mlp"])
def test_per_example_gradients_match_numpy_and_the_microbatch_loop(hidden: list[int]) -> None:
    paddle.seed(1)
    model = MLP(5, hidden)
    x, y = _data()

    fast = per_example_gradients(model, paddle.to_tensor(x), paddle.to_tensor(y), _binary_loss)
    loop = per_example_gradients_loop(model, paddle.to_tensor(x), paddle.to_tensor(y), _binary_loss)
    reference = _numpy_reference(model, x, y)

    assert [g.shape for g in fast] == [(9, *p.shape) for p in model.parameters()]
    for got, slow, want in zip(fast, loop, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(slow, want, rtol=1e-4, atol=1e-6)


def test_noisy_gradient_clips_each_example_then_adds_calibrated_noise() -> None:
    rng = np.random.RandomState(7)
    grads = [rng.randn(6, 3, 2), rng.randn(6, 2)]
    clip, sigma, expected_batch = 0.5, 1.3, 4.0

    got = noisy_gradient(
        grads,
        max_grad_norm=clip,
        noise_multiplier=sigma,
        expected_batch=expected_batch,
        rng=np.random.RandomState(11),
    )

    norms = np.sqrt(sum((g.reshape(6, -1) ** 2).sum(axis=1) for g in grads))
    factor = np.minimum(1.0, clip / norms)
    noise = np.random.RandomState(11)
    for g, out in zip(grads, got, strict=True):
        clipped = (g * factor.reshape((6,) + (1,) * (g.ndim - 1))).sum(axis=0)
        want = (clipped + noise.normal(0.0, sigma * clip, size=clipped.shape)) / expected_batch
        np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-12)
    # Each example's clipped contribution has norm at most the clip.
    assert np.all(
        np.sqrt(sum((g.reshape(6, -1) ** 2).sum(1) for g in grads)) * factor <= clip + 1e-9
    )


def _context(tmp_path: Path) -> Context:
    return Context(inputs={}, args={}, outputs={"m": OutputData("m")}, scratch=tmp_path)


def _independent_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    accountant = rdp.RdpAccountant(list(RDP_ORDERS))
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


def test_reported_epsilon_is_what_the_accountant_computes_for_the_run(tmp_path: Path) -> None:
    x, y = _data(n=120, width=4)
    ctx = _context(tmp_path)
    config = TrainConfig(
        epochs=3, batch_size=16, learning_rate=0.05, seed=0, binary=True, fingerprint="t"
    )

    _, plan = fit_private(
        ctx,
        build_model=lambda: MLP(4, []),
        features=x,
        labels=y,
        config=config,
        dp=DPSettings(epsilon=2.0, delta=1e-5),
    )

    assert plan.sample_rate == 16 / 120 and plan.steps == 3 * round(120 / 16)
    assert ctx.privacy_spent == {"epsilon": plan.epsilon, "delta": 1e-5}
    assert plan.epsilon == _independent_epsilon(
        plan.noise_multiplier, plan.sample_rate, plan.steps, 1e-5
    )
    assert 1.9 < plan.epsilon <= 2.0  # calibrated to the target, never above it


def test_more_privacy_needs_more_noise() -> None:
    loose = calibrate(DPSettings(8.0, 1e-5), rows=500, batch_size=50, epochs=5)
    tight = calibrate(DPSettings(0.5, 1e-5), rows=500, batch_size=50, epochs=5)

    assert tight.noise_multiplier > loose.noise_multiplier > 0


def test_noise_is_secret_not_derived_from_the_task_seed(tmp_path: Path) -> None:
    x, y = _data(n=40, width=3)
    config = TrainConfig(
        epochs=1, batch_size=10, learning_rate=0.1, seed=5, binary=True, fingerprint="t"
    )
    weights = []
    for _ in range(2):
        result, _ = fit_private(
            _context(tmp_path),
            build_model=lambda: MLP(3, []),
            features=x,
            labels=y,
            config=config,
            dp=DPSettings(epsilon=1.0, delta=1e-5),
        )
        weights.append(result.model.parameters()[0].numpy().copy())

    assert not np.allclose(weights[0], weights[1])


def test_tabular_train_with_dp_reports_its_privacy_and_no_training_loss(tmp_path: Path) -> None:
    table = breast_cancer_hospitals()["hospital_a.csv"]
    run = run_builtin(
        "tabular-train",
        {"a": table},
        {
            "label_column": "malignant",
            "id_column": "patient_id",
            "epochs": 2,
            "dp": {"epsilon": 1.0, "delta": 1e-5},
        },
        ("metrics",),
        tmp_path,
    )

    metrics = run.json("metrics")
    assert metrics["privacy"]["epsilon"] <= 1.0 and metrics["privacy"]["sampling"] == "poisson"
    assert all(set(epoch) == {"epoch", "epsilon"} for epoch in metrics["epochs"])
    assert all("loss" not in p for p in run.progress)


def test_image_cnn_per_example_gradients_match_the_loop_and_batchnorm_is_refused() -> None:
    from teeflow.functions.dl.dp import _class_loss, _per_example
    from teeflow.functions.dl.networks import SmallCNN

    paddle.seed(2)
    images = paddle.to_tensor(np.random.RandomState(1).rand(3, 1, 8, 8).astype(np.float32))
    labels = paddle.to_tensor(np.array([0, 2, 1]))
    model = SmallCNN(1, 3, norm="group")

    grads = _per_example(model, images, labels, _class_loss)
    summed = paddle.grad(_class_loss(model(images), labels).sum(), model.parameters())

    for per, total in zip(grads, summed, strict=True):  # per-example grads add up to the batch's
        np.testing.assert_allclose(per.sum(axis=0), total.numpy(), rtol=1e-3, atol=1e-5)
    with pytest.raises(FunctionError, match="BatchNorm"):
        _per_example(SmallCNN(1, 3), images, labels, _class_loss)


def test_image_train_with_dp_spends_no_more_than_asked(tmp_path: Path) -> None:
    from teeflow.functions.datasets import digits_hospitals

    images = digits_hospitals()
    run = run_builtin(
        "image-classify-train",
        {"a": images["hospital_a.npz"]},
        {"epochs": 1, "batch_size": 64, "dp": {"epsilon": 2.0, "delta": 1e-5}},
        ("model", "metrics"),
        tmp_path,
    )
    predicted = run_builtin(
        "image-classify-predict",
        {"model": run.outputs["model"], "images": images["hospital_b.npz"]},
        {},
        ("predictions",),
        tmp_path / "predict",
    )

    metrics = run.json("metrics")
    assert 0 < metrics["privacy"]["epsilon"] <= 2.0
    assert metrics["test"]["accuracy"] is not None
    assert predicted.outputs["predictions"]  # the GroupNorm model loads and predicts


def test_multiclass_tabular_train_with_dp(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = ["id,a,b,c,d,species"] + [
        f"{i},{','.join(map(str, x))},{iris.target_names[y]}"
        for i, (x, y) in enumerate(zip(iris.data, iris.target, strict=True))
    ]
    run = run_builtin(
        "tabular-train",
        {"a": ("\n".join(rows) + "\n").encode()},
        {
            "label_column": "species",
            "id_column": "id",
            "model": "mlp",
            "epochs": 2,
            "dp": {"epsilon": 3.0, "delta": 1e-5},
        },
        ("metrics",),
        tmp_path,
    )

    metrics = run.json("metrics")
    assert metrics["privacy"]["epsilon"] <= 3.0
    assert "withheld" in metrics["train"]  # training-set metrics are not private
    assert len(metrics["test"]["confusion_matrix"]) == 3
