"""Plain PaddlePaddle baselines next to the teeflow built-ins, on the same data, split and seed.

The plain half imports nothing from teeflow except the demo-data builders: it reads the CSV / npz
bytes, does its own join, split, encoding, training loop and metrics with pandas, scikit-learn and
Paddle. The teeflow half runs the registered built-in through a ``Context``. Both print test-split
accuracy / AUC and wall time; the quality bar is that they agree within one point.

A second table is prediction-side: the teeflow model is saved, loaded by ``tabular-predict`` and
scored by the recipient on rows the training never used (the breast-cancer "new patients", the
credit test split, the digits test images through ``image-classify-predict``), next to plain
Paddle / plain LightGBM predicting the same rows; the bar there is a difference of 0.00 points.

    .venv/bin/python bench/plain_baselines.py                 # both tables
    .venv/bin/python bench/plain_baselines.py --predict-only  # the prediction-side table only
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from teeflow.functions.datasets import (
    breast_cancer_hospitals,
    digits_hospitals,
    german_credit_parties,
)

SEED = 0


CNN_ARGS: dict[str, Any] = {"model": "cnn", "epochs": 5, "batch_size": 64, "seed": SEED}
"""The digits CNN's settings, plain and through teeflow (plain_digits uses the same epochs,
batch size and learning rate)."""


def breast_cancer_args(model: str, hidden: list[int]) -> dict[str, Any]:
    """tabular-train's arguments for the breast-cancer hospitals."""
    return {
        "label_column": "malignant",
        "id_column": "patient_id",
        "model": model,
        "hidden": hidden or [32],
        "seed": SEED,
    }


def pooled_hospitals(bc: dict[str, bytes]) -> pd.DataFrame:
    """The two breast-cancer hospitals' tables, one after the other (as the plain half pools)."""
    return pd.concat(
        [pd.read_csv(io.BytesIO(bc[n])) for n in ("hospital_a.csv", "hospital_b.csv")],
        ignore_index=True,
    )


# --------------------------------------------------------------------------------------- plain
def _train(
    net: paddle.nn.Layer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    bs: int,
    lr: float,
    binary: bool,
) -> None:
    opt = paddle.optimizer.Adam(learning_rate=lr, parameters=net.parameters())
    shuffler = np.random.RandomState(SEED)
    net.train()
    for _ in range(epochs):
        order = shuffler.permutation(len(x))
        for begin in range(0, len(order), bs):
            idx = order[begin : begin + bs]
            out = net(paddle.to_tensor(x[idx]))
            target = paddle.to_tensor(y[idx])
            if binary:
                loss = paddle.nn.functional.binary_cross_entropy_with_logits(
                    out.squeeze(-1), target.astype("float32")
                )
            else:
                loss = paddle.nn.functional.cross_entropy(out, target.astype("int64"))
            loss.backward()
            opt.step()
            opt.clear_grad()
    net.eval()


def _logits(net: paddle.nn.Layer, x: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return np.concatenate(
            [net(paddle.to_tensor(x[i : i + 256])).numpy() for i in range(0, len(x), 256)]
        ).astype(np.float64)


def _mlp(width: int, hidden: list[int]) -> paddle.nn.Layer:
    layers: list[paddle.nn.Layer] = []
    for size in hidden:
        layers += [paddle.nn.Linear(width, size), paddle.nn.ReLU()]
        width = size
    return paddle.nn.Sequential(*layers, paddle.nn.Linear(width, 1))


class _Net(paddle.nn.Layer):
    """Same structure (and parameter creation order) as the built-in's MLP."""

    def __init__(self, width: int, hidden: list[int]) -> None:
        super().__init__()
        self.net = _mlp(width, hidden)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)


def fit_plain_tabular(
    frame: pd.DataFrame,
    *,
    label: str,
    id_col: str,
    hidden: list[int],
    epochs: int,
    bs: int,
    lr: float,
    trees: int = 0,
) -> tuple[Any, np.ndarray]:
    """Train on the 80% split (stratified, seeded); ``(score(frame) -> p, test row positions)``.
    ``trees > 0`` trains plain LightGBM (same settings as the built-in) instead of Paddle."""
    y = frame[label].to_numpy().astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(frame)), test_size=0.2, stratify=y, random_state=SEED
    )
    features = [c for c in frame.columns if c not in (label, id_col)]
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    text = [c for c in features if c not in numeric]
    train = frame.iloc[train_idx]
    mean, std = train[numeric].mean(), train[numeric].std(ddof=0).replace(0, 1.0)

    def encode(part: pd.DataFrame) -> np.ndarray:
        blocks = [((part[numeric].fillna(mean) - mean) / std).to_numpy()]
        for c in text:
            cats = sorted(train[c].dropna().astype(str).unique())
            blocks.append(part[c].astype(str).to_numpy()[:, None] == np.array(cats)[None, :])
        return np.hstack(blocks).astype(np.float32)

    x_train = encode(train)
    if trees:
        import lightgbm

        params = {
            "objective": "binary",
            "num_leaves": 31,
            "learning_rate": 0.1,
            "min_data_in_leaf": max(1, min(20, len(train_idx) // 10)),
            "seed": SEED,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        booster = lightgbm.train(
            params, lightgbm.Dataset(x_train, label=y[train_idx]), num_boost_round=trees
        )
        raw = lambda part: np.asarray(booster.predict(encode(part), raw_score=True))  # noqa: E731
        return (lambda part: 1 / (1 + np.exp(-raw(part)))), test_idx
    paddle.seed(SEED)
    with paddle.utils.unique_name.guard():
        net = _Net(x_train.shape[1], hidden)
        _train(net, x_train, y[train_idx], epochs=epochs, bs=bs, lr=lr, binary=True)
    return (lambda part: 1 / (1 + np.exp(-_logits(net, encode(part))[:, 0]))), test_idx


def binary_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(y, p)
    return {
        "auc": roc_auc_score(y, p),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": accuracy_score(y, p >= 0.5),
    }


def plain_tabular(frame: pd.DataFrame, *, label: str, **kw: Any) -> dict[str, float]:
    score, test_idx = fit_plain_tabular(frame, label=label, **kw)
    test = frame.iloc[test_idx]
    return binary_scores(test[label].to_numpy(), score(test))


class _CNN(paddle.nn.Layer):
    def __init__(self, classes: int) -> None:
        super().__init__()
        nn = paddle.nn
        self.features = nn.Sequential(
            nn.Conv2D(1, 32, 3, padding=1),
            nn.BatchNorm2D(32),
            nn.ReLU(),
            nn.Conv2D(32, 64, 3, padding=1),
            nn.BatchNorm2D(64),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.AdaptiveAvgPool2D(4),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, classes)
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.features(x))


def digits_split(files: list[bytes]) -> dict[str, np.ndarray]:
    """The hospitals' npz splits concatenated in input order (as the built-in pools them)."""
    split: dict[str, list[np.ndarray]] = {
        k: [] for k in ("train_images", "train_labels", "test_images", "test_labels")
    }
    for data in files:
        with np.load(io.BytesIO(data)) as npz:
            for key in split:
                split[key].append(npz[key])
    return {k: np.concatenate(v) for k, v in split.items()}


def multiclass_scores(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Accuracy and macro one-vs-rest AUC of (N, classes) probabilities."""
    return {
        "accuracy": accuracy_score(y, prob.argmax(1)),
        "auc": roc_auc_score(y, prob, multi_class="ovr", average="macro"),
    }


def plain_digits(files: list[bytes], *, epochs: int, bs: int, lr: float) -> dict[str, float]:
    xs = digits_split(files)
    x_train = (xs["train_images"][:, None] / 255.0).astype(np.float32)
    x_test = (xs["test_images"][:, None] / 255.0).astype(np.float32)
    y_train, y_test = xs["train_labels"][:, 0], xs["test_labels"][:, 0]
    paddle.seed(SEED)
    with paddle.utils.unique_name.guard():
        net = _CNN(10)
        _train(net, x_train, y_train, epochs=epochs, bs=bs, lr=lr, binary=False)
    logits = _logits(net, x_test)
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    return multiclass_scores(y_test, prob)


# ------------------------------------------------------------------------------------- teeflow
def teeflow_output(
    name: str, inputs: dict[str, bytes], args: dict[str, Any], slot: str = "metrics"
) -> bytes:
    from teeflow.functions.api import Context, InputData, OutputData
    from teeflow.functions.registry import get_builtin

    out = {slot: OutputData(slot)}
    with tempfile.TemporaryDirectory() as scratch:
        ctx = Context(
            inputs={k: InputData(k, v) for k, v in inputs.items()},
            args=args,
            outputs=out,
            scratch=Path(scratch),
        )
        get_builtin(name).load()(ctx)
    return out[slot].getvalue()


def teeflow_run(name: str, inputs: dict[str, bytes], args: dict[str, Any]) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads(teeflow_output(name, inputs, args))
    return metrics


def teeflow_predict(
    train_inputs: dict[str, bytes],
    args: dict[str, Any],
    score_inputs: dict[str, bytes],
    labels: pd.Series,
) -> dict[str, float]:
    """tabular-train, then tabular-predict with the saved model; metrics computed by the
    recipient from the predictions CSV against ``labels`` (indexed by the model's id)."""
    model = teeflow_output("tabular-train", train_inputs, args, "model")
    predictions = teeflow_output(
        "tabular-predict", {"model": model, **score_inputs}, {}, "predictions"
    )
    table = pd.read_csv(io.BytesIO(predictions))
    return binary_scores(labels.loc[table.iloc[:, 0]].to_numpy(), table["probability"].to_numpy())


def prediction_side() -> None:
    """Plain Paddle / plain LightGBM vs teeflow on rows the training never used: teeflow's
    model saved, loaded by tabular-predict and scored by the recipient."""
    rows = []
    bc = breast_cancer_hospitals()
    pooled = pooled_hospitals(bc)
    new = pd.read_csv(io.BytesIO(bc["new_patients_labelled.csv"]))
    for model, hidden in (("logistic", []), ("mlp", [32])):
        score, _ = fit_plain_tabular(
            pooled,
            label="malignant",
            id_col="patient_id",
            hidden=hidden,
            epochs=20,
            bs=32,
            lr=0.01,
        )
        plain = binary_scores(new["malignant"].to_numpy(), score(new))
        tee = teeflow_predict(
            {"hospital_a": bc["hospital_a.csv"], "hospital_b": bc["hospital_b.csv"]},
            breast_cancer_args(model, hidden),
            {"table": bc["new_patients.csv"]},
            new.set_index("patient_id")["malignant"],
        )
        rows.append((f"breast-cancer {model}, new patients", plain, tee))

    cr = german_credit_parties()
    bank, bureau = (pd.read_csv(io.BytesIO(cr[n])) for n in ("bank.csv", "bureau.csv"))
    joined = (
        bank.merge(bureau, on="applicant_id", how="inner")
        .sort_values("applicant_id", kind="mergesort")
        .reset_index(drop=True)
    )
    for model, trees in (("logistic", 0), ("gbdt", 100)):
        score, test_idx = fit_plain_tabular(
            joined,
            label="default",
            id_col="applicant_id",
            hidden=[],
            epochs=20,
            bs=32,
            lr=0.01,
            trees=trees,
        )
        test = joined.iloc[test_idx]
        plain = binary_scores(test["default"].to_numpy(), score(test))
        held_back = bank[bank["applicant_id"].isin(test["applicant_id"])].drop(columns=["default"])
        tee = teeflow_predict(
            {"bank": cr["bank.csv"], "bureau": cr["bureau.csv"]},
            {"label_column": "default", "id_column": "applicant_id", "model": model, "seed": SEED},
            {"bank": held_back.to_csv(index=False).encode(), "bureau": cr["bureau.csv"]},
            joined.set_index("applicant_id")["default"],
        )
        rows.append((f"german-credit {model}, test rows", plain, tee))

    dg = digits_hospitals()
    files = [dg["hospital_a.npz"], dg["hospital_b.npz"]]
    plain = plain_digits(files, epochs=5, bs=64, lr=1e-3)
    tee = teeflow_image_predict(files, CNN_ARGS)
    rows.append(("digits cnn, test images", plain, tee))
    _print(rows, timed=False)


def teeflow_image_predict(files: list[bytes], args: dict[str, Any]) -> dict[str, float]:
    """image-classify-train, then image-classify-predict with the saved model on the pooled
    test images; metrics computed by the recipient from the predictions CSV."""
    model = teeflow_output(
        "image-classify-train",
        {"hospital_a": files[0], "hospital_b": files[1]},
        args,
        "model",
    )
    xs = digits_split(files)
    buffer = io.BytesIO()
    np.savez(buffer, images=xs["test_images"])
    predictions = teeflow_output(
        "image-classify-predict",
        {"model": model, "images": buffer.getvalue()},
        {},
        "predictions",
    )
    table = pd.read_csv(io.BytesIO(predictions))
    columns = [c for c in table.columns if c.startswith("p_")]
    order = np.argsort([int(c[2:]) for c in columns])
    prob = table[columns].to_numpy()[:, order]
    return multiclass_scores(xs["test_labels"][:, 0], prob)


def _print(rows: list[tuple[Any, ...]], *, timed: bool) -> None:
    print(
        f"{'task':38} {'metric':8} {'plain':>8} {'teeflow':>8} {'diff':>7}"
        + (f" {'t_plain':>8} {'t_teeflow':>9}" if timed else "")
    )
    for task, plain, tee, *times in rows:
        for metric in ("accuracy", "auc", "ks"):
            if metric in plain and metric in tee:
                diff = 100 * (tee[metric] - plain[metric])
                line = f"{task:38} {metric:8} {plain[metric]:8.4f} {tee[metric]:8.4f} {diff:+6.2f}p"
                if timed:
                    line += f" {times[0]:7.1f}s {times[1]:8.1f}s"
                print(line)


def main() -> None:
    warnings.filterwarnings("ignore")
    if "--predict-only" in sys.argv:
        prediction_side()
        return
    rows = []

    def timed(fn: Any, *a: Any, **kw: Any) -> tuple[Any, float]:
        start = time.perf_counter()
        result = fn(*a, **kw)
        return result, time.perf_counter() - start

    bc = breast_cancer_hospitals()
    pooled = pooled_hospitals(bc)
    for model, hidden in (("logistic", []), ("mlp", [32])):
        cfg = {"epochs": 20, "bs": 32, "lr": 0.01}
        plain, t_plain = timed(
            plain_tabular, pooled, label="malignant", id_col="patient_id", hidden=hidden, **cfg
        )
        tee, t_tee = timed(
            teeflow_run,
            "tabular-train",
            {"hospital_a": bc["hospital_a.csv"], "hospital_b": bc["hospital_b.csv"]},
            breast_cancer_args(model, hidden),
        )
        rows.append((f"breast-cancer {model}", plain, tee, t_plain, t_tee))

    cr = german_credit_parties()
    bank, bureau = (pd.read_csv(io.BytesIO(cr[n])) for n in ("bank.csv", "bureau.csv"))
    joined = (
        bank.merge(bureau, on="applicant_id", how="inner")
        .sort_values("applicant_id", kind="mergesort")
        .reset_index(drop=True)
    )
    plain, t_plain = timed(
        plain_tabular,
        joined,
        label="default",
        id_col="applicant_id",
        hidden=[],
        epochs=20,
        bs=32,
        lr=0.01,
    )
    tee, t_tee = timed(
        teeflow_run,
        "tabular-train",
        {"bank": cr["bank.csv"], "bureau": cr["bureau.csv"]},
        {"label_column": "default", "id_column": "applicant_id", "seed": SEED},
    )
    rows.append(("german-credit logistic (joined)", plain, tee, t_plain, t_tee))

    dg = digits_hospitals()
    files = [dg["hospital_a.npz"], dg["hospital_b.npz"]]
    plain, t_plain = timed(plain_digits, files, epochs=5, bs=64, lr=1e-3)
    tee, t_tee = timed(
        teeflow_run,
        "image-classify-train",
        {"hospital_a": files[0], "hospital_b": files[1]},
        CNN_ARGS,
    )
    tee = {"accuracy": tee["test"]["accuracy"], "auc": tee["test"]["auc"]}
    rows.append(("digits cnn (MedMNIST stand-in)", plain, tee, t_plain, t_tee))

    _print(rows, timed=True)
    print()
    prediction_side()


if __name__ == "__main__":
    main()
