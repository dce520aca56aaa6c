"""What the enclave saves loads back to exactly what was saved: models of every kind, whatever the
column order of the table they were trained on, and the checkpoints of a training run.

Regression for issue 12: a tabular model saved its feature statistics as a JSON object with sorted
keys, so a table whose numeric columns were not in alphabetical order was scored with the weights
of other features (predict on the very training rows gave AUC 0.08 instead of 0.93).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from conftest_dl import run_builtin
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins.image_predict import ImageModel
from teeflow.functions.dl.gbdt import BOOSTER_MEMBER, train_booster
from teeflow.functions.dl.metrics import class_probabilities
from teeflow.functions.dl.modelfile import ModelBlob
from teeflow.functions.dl.networks import build_image_model, build_tabular_model
from teeflow.functions.dl.scoring import TabularModel
from teeflow.functions.dl.state import TrainState, exact_json, tensor_arrays
from teeflow.functions.dl.tables import Preprocessor, split_rows
from teeflow.functions.dl.training import seed_everything

FAST = {"epochs": 10, "batch_size": 32, "learning_rate": 0.05, "seed": 0}


def unordered_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A 0/1 label that rises with ``zeta`` and falls with ``alpha``; columns deliberately out of
    alphabetical order and on very different scales, plus a text column."""
    rng = np.random.RandomState(seed)
    zeta, alpha = rng.normal(size=n), rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * zeta - 2.5 * alpha)))).astype(int)
    return pd.DataFrame(
        {
            "id": [f"r{i:04d}" for i in range(n)],
            "zeta": zeta * 1000 + 5000,
            "mid": rng.normal(size=n) * 0.01,
            "colour": rng.choice(["red", "green", "blue"], size=n),
            "alpha": alpha * 3 - 40,
            "label": label,
        }
    )


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@pytest.mark.parametrize("model", ["logistic", "mlp", "gbdt"])
def test_predict_on_the_training_rows_scores_as_training_did(tmp_path: Path, model: str) -> None:
    frame = unordered_table()
    args = {"label_column": "label", "id_column": "id", "model": model, **FAST}
    train = run_builtin("tabular-train", {"t": _csv(frame)}, args, ("model", "metrics"), tmp_path)
    train_rows, _ = split_rows(frame["label"].to_numpy(), test_fraction=0.2, seed=0)
    rows = frame.iloc[train_rows]

    predict = run_builtin(
        "tabular-predict",
        {"model": train.outputs["model"], "t": _csv(rows.drop(columns=["label"]))},
        {},
        ("predictions",),
        tmp_path,
    )

    scored = pd.read_csv(io.BytesIO(predict.outputs["predictions"]))
    labels = rows.set_index("id").loc[scored["id"], "label"]
    auc = round(float(roc_auc_score(labels, scored["probability"])), 6)
    assert auc == train.json("metrics")["train"]["auc"]
    assert auc > 0.85


@pytest.mark.parametrize(
    ("model", "order"),
    [
        ("logistic", ["label", "alpha", "zeta", "id", "colour", "mid"]),
        ("mlp", ["mid", "zeta", "colour", "alpha", "label", "id"]),
        ("mlp", ["id", "zeta", "mid", "colour", "alpha", "label"]),
        ("gbdt", ["zeta", "label", "colour", "id", "mid", "alpha"]),
    ],
)
def test_evaluate_on_each_split_reproduces_the_training_metrics(
    tmp_path: Path, model: str, order: list[str]
) -> None:
    frame = unordered_table(seed=1)[order]
    args = {"label_column": "label", "id_column": "id", "model": model, **FAST, "num_trees": 30}
    if model != "gbdt":
        args.pop("num_trees")
    train = run_builtin("tabular-train", {"t": _csv(frame)}, args, ("model", "metrics"), tmp_path)
    splits = split_rows(frame["label"].to_numpy(), test_fraction=0.2, seed=0)

    evaluated = [
        run_builtin(
            "evaluate",
            {"model": train.outputs["model"], "t": _csv(frame.iloc[rows])},
            {},
            ("metrics",),
            tmp_path,
        ).json("metrics")
        for rows in splits
    ]

    metrics = train.json("metrics")
    for name, result in zip(("train", "test"), evaluated, strict=True):
        assert {k: result[k] for k in metrics[name]} == metrics[name], name


@st.composite
def _tables(draw: st.DrawFn) -> pd.DataFrame:
    """3-8 columns, each numeric or text, with random names in a random order."""
    names = draw(
        st.lists(
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
            min_size=3,
            max_size=8,
            unique=True,
        )
    )
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    columns: dict[str, object] = {}
    for name in names:
        if draw(st.booleans()):
            columns[name] = rng.normal(size=40) * rng.uniform(0.01, 1000) + rng.uniform(-50, 50)
        else:
            columns[name] = rng.choice(["p", "q", "r", "s"], size=40)
    return pd.DataFrame(columns)


def _tabular_config(
    preprocessor: Preprocessor, model: str, classes: list[str] | None
) -> dict[str, object]:
    config: dict[str, object] = {
        "kind": "tabular",
        "model": model,
        "hidden": [8] if model == "mlp" else [],
        "in_features": preprocessor.width,
        "preprocessing": preprocessor.to_dict(),
        "label_column": "y",
        "id_column": None,
        "positive_label": None,
        "threshold": 0.5,
    }
    if classes is not None:
        config["class_names"] = classes
    return config


@settings(max_examples=25, deadline=None)
@given(
    frame=_tables(),
    model=st.sampled_from(["logistic", "mlp"]),
    classes=st.sampled_from([None, ["zeta", "alpha", "mid"], ["9", "10", "2", "1"]]),
)
def test_a_saved_tabular_model_scores_as_the_one_in_memory(
    frame: pd.DataFrame, model: str, classes: list[str] | None
) -> None:
    preprocessor = Preprocessor.fit(frame, list(frame.columns))
    config = _tabular_config(preprocessor, model, classes)
    seed_everything(0)
    network = build_tabular_model(config)
    network.eval()
    with paddle.no_grad():
        logits = network(paddle.to_tensor(preprocessor.transform(frame))).numpy()
    in_memory = class_probabilities(logits.astype(np.float64), multiclass=classes is not None)

    blob = ModelBlob(config=config, weights=tensor_arrays(network.state_dict())).to_bytes()
    loaded = TabularModel.from_bytes(blob)

    assert loaded.preprocessor == preprocessor
    assert list(loaded.preprocessor.numeric) == list(preprocessor.numeric)
    assert loaded.class_names == classes
    scored = loaded.probabilities(loaded.preprocessor.transform(frame))
    np.testing.assert_allclose(scored, in_memory, rtol=1e-6, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(frame=_tables(), classes=st.sampled_from([None, ["zeta", "alpha", "mid"]]))
def test_saved_trees_score_as_the_ones_in_memory(
    frame: pd.DataFrame, classes: list[str] | None
) -> None:
    preprocessor = Preprocessor.fit(frame, list(frame.columns))
    features = preprocessor.transform(frame)
    labels = np.arange(len(frame)) % (len(classes) if classes else 2)
    booster = train_booster(
        Context(inputs={}, args={}, outputs={}, scratch=Path(".")),
        features,
        labels,
        classes=len(classes) if classes else 2,
        seed=0,
        num_trees=5,
        num_leaves=4,
        learning_rate=0.3,
    )
    config = _tabular_config(preprocessor, "gbdt", classes)
    in_memory = booster.predict(features)
    in_memory = in_memory if classes else np.column_stack([1 - in_memory, in_memory])

    extra = {BOOSTER_MEMBER: booster.model_to_string().encode()}
    loaded = TabularModel.from_bytes(ModelBlob(config=config, weights={}, extra=extra).to_bytes())

    scored = loaded.probabilities(loaded.preprocessor.transform(frame))
    np.testing.assert_allclose(scored, in_memory, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("classes", [["zebra", "apple", "mango"], ["b", "a"]])
def test_a_saved_image_model_classifies_as_the_one_in_memory(classes: list[str]) -> None:
    config = {
        "kind": "image",
        "model": "cnn",
        "channels": 1,
        "num_classes": len(classes),
        "class_names": classes,
        "image_size": [8, 8],
    }
    images = np.random.RandomState(0).uniform(size=(6, 1, 8, 8)).astype(np.float32)
    seed_everything(0)
    network = build_image_model(config)
    network.eval()
    with paddle.no_grad():
        in_memory = network(paddle.to_tensor(images)).numpy().argmax(axis=1)

    blob = ModelBlob(config=config, weights=tensor_arrays(network.state_dict())).to_bytes()
    table = ImageModel(blob).classify(images, [str(i) for i in range(len(images))])

    assert table["predicted"].tolist() == [classes[i] for i in in_memory]
    assert [c for c in table.columns if c.startswith("p_")] == [f"p_{c}" for c in classes]


def test_a_checkpoint_loads_back_exactly() -> None:
    shuffler = np.random.RandomState(7)
    shuffler.permutation(10)
    state = TrainState(
        epoch=3,
        model={"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
        optimizer={"m": np.ones(3, dtype=np.float32)},
        rng=shuffler.get_state(legacy=False),
        history=[{"epoch": 1, "loss": 0.5, "accuracy": 0.75}],
        config_fingerprint="abc",
    )

    loaded = TrainState.from_bytes(state.to_bytes())

    restored = np.random.RandomState(0)
    restored.set_state(loaded.rng)
    assert restored.permutation(100).tolist() == shuffler.permutation(100).tolist()
    assert loaded.history == state.history and loaded.epoch == 3
    assert all(np.array_equal(loaded.model[k], v) for k, v in state.model.items())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"mean": float("nan")}, "cannot be saved exactly"),
        ({"std": float("inf")}, "cannot be saved exactly"),
        ({1: "class one"}, "would not load back exactly"),
        ({"sizes": (3, 4)}, "would not load back exactly"),
        ({"x": np.float32(1.5)}, "cannot be saved exactly"),
    ],
)
def test_what_would_not_load_back_exactly_is_refused_when_saved(
    document: dict, message: str
) -> None:
    with pytest.raises(FunctionError, match=message):
        exact_json(document, what="the model config")


def test_saving_keeps_the_key_order_it_was_given() -> None:
    document = {"zeta": 1, "alpha": {"z": [1.5, "x"], "a": None}}

    assert list(json.loads(exact_json(document, what="x"))) == ["zeta", "alpha"]


def test_a_model_that_lost_its_feature_order_is_refused_with_what_to_do() -> None:
    old = io.BytesIO()
    with zipfile.ZipFile(old, "w") as archive:
        config = {"format": "teeflow-model/1", "kind": "tabular", "preprocessing": {}}
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("weights.npz", b"")

    with pytest.raises(FunctionError, match="train the model again"):
        TabularModel.from_bytes(old.getvalue())
