"""Binary metrics of a confident model: probabilities keep the logits' order."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from teeflow.functions.dl.metrics import binary_metrics, sigmoid


def test_auc_of_very_negative_logits_is_the_auc_of_the_logits() -> None:
    # A well-trained MLP gives logits far below -60 (the issue 16 run: down to -171). The order of
    # those rows decides the AUC; a sigmoid that clips them makes them tie.
    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.uniform(-200, -61, 40), rng.uniform(-150, 5, 40)])
    labels = np.array([0] * 40 + [1] * 40)
    metrics = binary_metrics(labels, sigmoid(logits))
    assert metrics["auc"] == round(float(roc_auc_score(labels, logits)), 6)


def test_sigmoid_is_the_plain_formula_and_never_overflows() -> None:
    logits = np.array([-800.0, -171.0, -61.0, 0.0, 20.0, 800.0])
    with np.errstate(over="raise"):
        with np.errstate(over="ignore"):
            expected = 1.0 / (1.0 + np.exp(-logits))
        got = sigmoid(logits)  # raises FloatingPointError if an overflow escapes
    assert np.array_equal(got, expected)
    assert got[0] == 0.0 and got[-1] == 1.0
