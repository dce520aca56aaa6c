"""P9: quality with privacy: DP-SGD tabular-train beside plain training, and its time cost.

The ``tabular-train`` built-in runs in this process through a Context (no platform around it: the
figure is the price of DP-SGD itself, not of the enclave), on the same split, seed, model, epochs
and batch size (after one warm-up run), once plainly (Adam) and once per target epsilon with
DP-SGD (Poisson sampling, per-example clipping at 1.0, Gaussian noise calibrated by the RDP
accountant, then Adam; delta 1e-5). Datasets:

- breast cancer (scikit-learn's Wisconsin table, both hospitals pooled: 483 rows, 30 features);
- digits (scikit-learn's 1,797 8x8 images flattened to 64 pixel columns, binary target "digit >= 5":
  tabular-train is a binary classifier).

Figures: test AUC and accuracy plain versus DP per epsilon, and DP wall time / plain wall time.

    .venv/bin/python bench/bench_dp.py [--epochs 30] [--epsilons 1,3,8] [--model mlp] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import Figure, write_json

SEED = 0


def _tables() -> dict[str, tuple[bytes, str]]:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    from teeflow.functions.datasets import breast_cancer_hospitals

    bc = breast_cancer_hospitals()
    pooled = pd.concat(
        [pd.read_csv(io.BytesIO(bc[name])) for name in ("hospital_a.csv", "hospital_b.csv")]
    )
    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"px{i}" for i in range(64)])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["high"] = (digits.target >= 5).astype(int)
    return {
        "breast-cancer": (pooled.to_csv(index=False).encode(), "malignant"),
        "digits": (frame.to_csv(index=False).encode(), "high"),
    }


def _train(table: bytes, label: str, args: dict[str, Any]) -> tuple[dict[str, Any], float]:
    from teeflow.functions.api import Context, InputData, OutputData
    from teeflow.functions.registry import get_builtin

    with tempfile.TemporaryDirectory() as scratch:
        out = OutputData("metrics")
        ctx = Context(
            inputs={"data": InputData("data", table)},
            args={"label_column": label, **args},
            outputs={"metrics": out},
            scratch=Path(scratch),
        )
        started = time.perf_counter()
        get_builtin("tabular-train").load()(ctx)
        elapsed = time.perf_counter() - started
    metrics: dict[str, Any] = json.loads(out.getvalue())
    return metrics, elapsed


def run(epochs: int, epsilons: list[float], model: str, repeats: int) -> list[Figure]:
    figures: list[Figure] = []
    tables = _tables()
    # Warm-up: the first call pays Paddle's and the accountant's one-off start-up costs.
    warm, warm_label = tables["breast-cancer"]
    warm_args = {"id_column": "patient_id", "epochs": 1, "dp": {"epsilon": 1.0, "delta": 1e-5}}
    _train(warm, warm_label, warm_args)
    for name, (table, label) in tables.items():
        id_column = "patient_id" if name == "breast-cancer" else "row_id"
        base = {
            "id_column": id_column,
            "model": model,
            "epochs": epochs,
            "batch_size": 32,
            "learning_rate": 0.01,
            "seed": SEED,
        }
        plain_runs = [_train(table, label, base) for _ in range(repeats)]
        plain, plain_time = plain_runs[0][0], statistics.median(t for _, t in plain_runs)
        for epsilon in epsilons:
            dp_args = {**base, "dp": {"epsilon": epsilon, "delta": 1e-5, "max_grad_norm": 1.0}}
            dp_runs = [_train(table, label, dp_args) for _ in range(repeats)]
            aucs = [m["auc"] for m, _ in dp_runs]
            accuracies = [m["accuracy"] for m, _ in dp_runs]
            dp_time = statistics.median(t for _, t in dp_runs)
            spent = dp_runs[0][0]["privacy"]
            note = (
                f"eps spent {spent['epsilon']:.3f}, sigma {spent['noise_multiplier']:.2f}, "
                f"q {spent['sample_rate']:.3f}, {spent['steps']} steps; {model}, {epochs} epochs"
            )
            figures += [
                Figure(
                    "P9",
                    f"{name} test AUC, DP eps={epsilon:g} vs plain",
                    plain["auc"],
                    statistics.median(aucs),
                    "AUC",
                    note=note,
                ),
                Figure(
                    "P9",
                    f"{name} test accuracy, DP eps={epsilon:g} vs plain",
                    plain["accuracy"],
                    statistics.median(accuracies),
                    "accuracy",
                ),
                Figure(
                    "P9",
                    f"{name} training time, DP eps={epsilon:g} / plain",
                    plain_time,
                    dp_time,
                    "s",
                ),
            ]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--model", default="mlp", choices=("logistic", "mlp"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    epsilons = [float(e) for e in args.epsilons.split(",") if e.strip()]
    figures = run(args.epochs, epsilons, args.model, args.repeats)
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        print(f"{f.name:55s} plain {f.plain:8.4f}  dp {f.teeflow:8.4f}  ratio {ratio}  {f.note}")
    write_json(figures, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
