"""DP-SGD on PaddlePaddle: per-example clipping, Gaussian noise, Poisson sampling, RDP accounting.

The algorithm is Abadi et al. 2016 ("Deep Learning with Differential Privacy"), as Opacus and
TensorFlow Privacy implement it:

1. **Sampling.** Each step takes a Poisson sample of the training rows: every row joins the batch
   independently with probability ``q = batch_size / n`` (so batches vary in size, and may be
   empty). An epoch is ``round(n / batch_size)`` steps. The sampling randomness is drawn from a
   generator seeded from the operating system's entropy, not from the task's ``seed``: noise that
   a participant could regenerate from the contract would protect nothing.
2. **Per-example gradients.** For a network of ``Linear`` layers and element-wise activations
   (the tabular logistic regression and MLP) they are computed in one backward pass: the
   gradient of the summed loss with respect to each layer's output, ``g_i``, times the layer's
   input ``a_i`` gives example ``i``'s weight gradient ``a_i g_i^T`` and bias gradient ``g_i``.
   :func:`per_example_gradients_loop` is the microbatch-of-one reference for any network.
3. **Clipping.** Each example's whole gradient (all parameters together) is scaled to L2 norm at
   most ``C = max_grad_norm``.
4. **Noise.** The clipped gradients are summed, ``N(0, (sigma * C)^2)`` noise is added to every
   coordinate, and the sum is divided by the expected batch size ``q * n``. Adam then takes the
   noisy gradient (post-processing keeps the guarantee).
5. **Accounting.** Google's ``dp-accounting`` RDP accountant composes ``steps`` Poisson-sampled
   Gaussian mechanisms with noise multiplier ``sigma`` and rate ``q``; :func:`calibrate` finds the
   smallest ``sigma`` whose epsilon at ``delta`` is within the target, and :func:`epsilon_of`
   states what a run spent.

The guarantee is example-level (one row of the training split) for the returned model. Training
loss and accuracy are not reported while training privately: they are not private.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
from paddle import nn

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.dl.training import (
    TrainConfig,
    TrainResult,
    checkpoint_training,
    restore_training,
    seed_everything,
)

__all__ = [
    "RDP_ORDERS",
    "DPPlan",
    "DPSettings",
    "calibrate",
    "dp_settings_arg",
    "epsilon_of",
    "fit_private",
    "noisy_gradient",
    "per_example_gradients",
    "per_example_gradients_loop",
]

RDP_ORDERS = (*range(2, 64), 80, 96, 128, 256, 512)
"""Integer Renyi orders (closed form, fast); the accountant takes the best of them."""

LossFn = Callable[[paddle.Tensor, paddle.Tensor], paddle.Tensor]
"""(logits, labels) -> per-example losses, shape (n,)."""


@dataclass(frozen=True)
class DPSettings:
    """What the contract asks for: ``arguments.dp = {epsilon, delta, max_grad_norm}``."""

    epsilon: float
    delta: float
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class DPPlan:
    """A calibrated run: the noise multiplier, sampling rate and steps, and the epsilon the
    accountant computes for them at ``delta`` (at most the target)."""

    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon: float
    delta: float
    max_grad_norm: float

    def describe(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "max_grad_norm": self.max_grad_norm,
            "sampling": "poisson",
            "accountant": "rdp (dp-accounting)",
        }


def _event(noise_multiplier: float, sample_rate: float, steps: int) -> Any:
    import dp_accounting

    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    sampled = dp_accounting.PoissonSampledDpEvent(sample_rate, gaussian)
    return dp_accounting.SelfComposedDpEvent(sampled, steps)


def epsilon_of(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon at ``delta`` of ``steps`` Poisson-sampled Gaussian steps (RDP accountant)."""
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant(list(RDP_ORDERS))
    accountant.compose(_event(noise_multiplier, sample_rate, steps))
    return float(accountant.get_epsilon(delta))


def calibrate(settings: DPSettings, *, rows: int, batch_size: int, epochs: int) -> DPPlan:
    """The smallest noise multiplier (to 0.1%) that keeps epsilon within ``settings.epsilon``.

    Raises FunctionError when no noise multiplier below 1000 reaches it.
    """
    from dp_accounting import mechanism_calibration, rdp

    if rows < 2:
        raise FunctionError("DP training needs at least two training rows")
    sample_rate = min(1.0, batch_size / rows)
    steps = epochs * max(1, round(rows / batch_size))
    try:
        sigma = mechanism_calibration.calibrate_dp_mechanism(
            lambda: rdp.RdpAccountant(list(RDP_ORDERS)),
            lambda s: _event(s, sample_rate, steps),
            settings.epsilon,
            settings.delta,
            mechanism_calibration.LowerEndpointAndGuess(0.01, 1.0),
            tol=1e-3,
        )
    except (ValueError, RuntimeError) as exc:
        raise FunctionError(
            f"no noise level reaches epsilon={settings.epsilon:g} at delta={settings.delta:g} "
            f"with {steps} steps; train fewer epochs or allow a larger epsilon"
        ) from exc
    sigma = float(sigma)
    epsilon = epsilon_of(
        noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=settings.delta
    )
    return DPPlan(sigma, sample_rate, steps, epsilon, settings.delta, settings.max_grad_norm)


_ELEMENTWISE = (nn.Linear, nn.ReLU, nn.Sigmoid, nn.Tanh)


def _leaves(model: nn.Layer) -> list[nn.Layer]:
    return [layer for layer in model.sublayers() if not list(layer.children())]


def _linear_stack(model: nn.Layer) -> list[nn.Layer]:
    layers = _leaves(model)
    for layer in layers:
        if not isinstance(layer, _ELEMENTWISE):
            raise FunctionError(
                f"vectorised DP-SGD supports Linear layers and element-wise activations; "
                f"found {type(layer).__name__}"
            )
    return layers


def _per_example(
    model: nn.Layer, features: paddle.Tensor, labels: paddle.Tensor, loss_fn: LossFn
) -> list[np.ndarray]:
    """Vectorised for a Linear stack, one example at a time for anything else; a layer that
    mixes the examples of a batch (BatchNorm) is refused."""
    leaves = _leaves(model)
    if any(isinstance(layer, nn.layer.norm._BatchNormBase) for layer in leaves):
        raise FunctionError("DP-SGD cannot train a network with BatchNorm; use GroupNorm")
    if all(isinstance(layer, _ELEMENTWISE) for layer in leaves):
        return per_example_gradients(model, features, labels, loss_fn)
    return per_example_gradients_loop(model, features, labels, loss_fn)


def per_example_gradients(
    model: nn.Layer, features: paddle.Tensor, labels: paddle.Tensor, loss_fn: LossFn
) -> list[np.ndarray]:
    """Per-example gradients of every parameter of a Linear/activation stack, in
    ``model.parameters()`` order; each array is ``(n, *parameter.shape)``. One backward pass."""
    inputs: list[paddle.Tensor] = []
    outputs: list[paddle.Tensor] = []
    hidden = features
    for layer in _linear_stack(model):
        if isinstance(layer, nn.Linear):
            inputs.append(hidden)
            hidden = layer(hidden)
            outputs.append(hidden)
        else:
            hidden = layer(hidden)
    loss = loss_fn(hidden, labels).sum()
    grads = paddle.grad(loss, outputs)
    by_param: dict[int, np.ndarray] = {}
    linears = [layer for layer in _linear_stack(model) if isinstance(layer, nn.Linear)]
    for layer, activation, grad in zip(linears, inputs, grads, strict=True):
        a, g = activation.numpy().astype(np.float64), grad.numpy().astype(np.float64)
        by_param[id(layer.weight)] = np.einsum("ni,nj->nij", a, g)
        if layer.bias is not None:
            by_param[id(layer.bias)] = g
    return [by_param[id(p)] for p in model.parameters()]


def per_example_gradients_loop(
    model: nn.Layer, features: paddle.Tensor, labels: paddle.Tensor, loss_fn: LossFn
) -> list[np.ndarray]:
    """The microbatch-of-one reference: one backward pass per example, any network without
    cross-example layers (no BatchNorm)."""
    rows: list[list[np.ndarray]] = []
    for index in range(features.shape[0]):
        loss = loss_fn(model(features[index : index + 1]), labels[index : index + 1]).sum()
        grads = paddle.grad(loss, model.parameters())
        rows.append([grad.numpy().astype(np.float64) for grad in grads])
    return [np.stack(column) for column in zip(*rows, strict=True)]


def noisy_gradient(
    per_example: list[np.ndarray],
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch: float,
    rng: np.random.RandomState,
) -> list[np.ndarray]:
    """Clip each example's gradient to L2 norm ``max_grad_norm``, sum, add Gaussian noise of
    standard deviation ``noise_multiplier * max_grad_norm``, divide by ``expected_batch``."""
    count = per_example[0].shape[0]
    squares = np.zeros(count)
    for grad in per_example:
        squares += (grad.reshape(count, -1) ** 2).sum(axis=1)
    scale = np.minimum(1.0, max_grad_norm / (np.sqrt(squares) + 1e-12))
    result = []
    for grad in per_example:
        clipped = (grad * scale.reshape((count,) + (1,) * (grad.ndim - 1))).sum(axis=0)
        noise = rng.normal(0.0, noise_multiplier * max_grad_norm, size=clipped.shape)
        result.append((clipped + noise) / expected_batch)
    return result


def _binary_loss(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    return paddle.nn.functional.binary_cross_entropy_with_logits(
        logits.squeeze(-1), labels.astype("float32"), reduction="none"
    )


def _class_loss(logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
    return paddle.nn.functional.cross_entropy(
        logits, labels.astype("int64"), reduction="none"
    ).reshape([-1])


def _apply(model: nn.Layer, optimizer: Any, grads: list[np.ndarray]) -> None:
    # The gradient of sum(p * g) with respect to p is g: the optimizer sees the noisy gradient.
    optimizer.clear_grad()
    params = list(model.parameters())
    surrogate = paddle.add_n(
        [
            (p * paddle.to_tensor(g.astype(np.float32))).sum()
            for p, g in zip(params, grads, strict=True)
        ]
    )
    surrogate.backward()
    optimizer.step()
    optimizer.clear_grad()


def _secret_rng() -> np.random.RandomState:
    return np.random.RandomState(np.frombuffer(os.urandom(32), dtype=np.uint32))


def fit_private(
    ctx: Context,
    *,
    build_model: Callable[[], nn.Layer],
    features: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    dp: DPSettings,
) -> tuple[TrainResult, DPPlan]:
    """DP-SGD counterpart of training.fit; sets ``ctx.privacy_spent``.

    Checkpoints carry the secret generator's state (sealed to the enclave), so a resumed run
    continues the same noise stream. Progress reports the epoch and the epsilon spent so far.
    """
    plan = calibrate(dp, rows=len(features), batch_size=config.batch_size, epochs=config.epochs)
    steps_per_epoch = plan.steps // config.epochs
    seed_everything(config.seed)  # initialisation only; sampling and noise use secret randomness
    with paddle.utils.unique_name.guard():
        model = build_model()
        optimizer = paddle.optimizer.Adam(
            learning_rate=config.learning_rate, parameters=model.parameters()
        )
    rng = _secret_rng()
    history, start = restore_training(ctx, model, optimizer, rng, config)
    model.train()
    expected = plan.sample_rate * len(features)
    for epoch in range(start + 1, config.epochs + 1):
        for _ in range(steps_per_epoch):
            chosen = np.flatnonzero(rng.random_sample(len(features)) < plan.sample_rate)
            if len(chosen):
                grads = _per_example(
                    model,
                    paddle.to_tensor(features[chosen]),
                    paddle.to_tensor(labels[chosen]),
                    _binary_loss if config.binary else _class_loss,
                )
            else:
                grads = [np.zeros((0, *p.shape)) for p in model.parameters()]
            noisy = noisy_gradient(
                grads,
                max_grad_norm=plan.max_grad_norm,
                noise_multiplier=plan.noise_multiplier,
                expected_batch=expected,
                rng=rng,
            )
            _apply(model, optimizer, noisy)
        so_far = epsilon_of(
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            steps=epoch * steps_per_epoch,
            delta=plan.delta,
        )
        record = {"epoch": epoch, "epsilon": round(so_far, 6)}
        history.append(record)
        ctx.progress(epochs=config.epochs, **record)
        if epoch < config.epochs and ctx.checkpoint_due():
            checkpoint_training(ctx, epoch, model, optimizer, rng, history, config)
    model.eval()
    ctx.privacy_spent = {"epsilon": plan.epsilon, "delta": plan.delta}
    if not math.isfinite(plan.epsilon):
        raise FunctionError("the accountant returned no finite epsilon")
    return TrainResult(model=model, history=history, resumed_from_epoch=start), plan


def dp_settings_arg(ctx: Context) -> DPSettings | None:
    """``arguments.dp`` as DPSettings (None when absent); FunctionError on a bad value."""
    value = ctx.arg("dp")
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"epsilon", "delta", "max_grad_norm"}:
        raise FunctionError("argument 'dp' must be {epsilon, delta, max_grad_norm (default 1.0)}")
    numbers = {}
    for name, default, low, high in (
        ("epsilon", None, 1e-3, 100.0),
        ("delta", None, 0.0, 0.1),
        ("max_grad_norm", 1.0, 1e-6, 1e6),
    ):
        number = value.get(name, default)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise FunctionError(f"argument dp.{name} must be a number")
        if not low <= float(number) <= high:
            raise FunctionError(f"argument dp.{name} must be between {low:g} and {high:g}")
        numbers[name] = float(number)
    return DPSettings(numbers["epsilon"], numbers["delta"], numbers["max_grad_norm"])
