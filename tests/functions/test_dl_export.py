"""A model a member holds, exported for outside use, predicts what teeflow predicts (issue 12).

``teeflow model export`` (client/_models.py) writes LR / MLP / CNN models in PaddlePaddle's
inference format with the preprocessing inside the graph, and GBDT models in LightGBM's text
format. Each export is loaded here with the tool's own loader (``paddle.inference.Config`` /
``create_predictor``, ``lightgbm.Booster``) and fed the rows as a member would (raw features in
the order features.json documents), and must give teeflow's own probabilities on those rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin
from test_dl_roundtrip import FAST, unordered_table

from teeflow.client import ClientError
from teeflow.client._models import export_model
from teeflow.functions.builtins.image_predict import ImageModel
from teeflow.functions.datasets import toy_scans
from teeflow.functions.dl.gbdt import raw_scores
from teeflow.functions.dl.images import load_unlabelled
from teeflow.functions.dl.scoring import TabularModel
from teeflow.functions.dl.transforms import ImageTransform


def _predictor(directory: Path) -> Any:
    import paddle.inference

    graph = directory / "model.json"
    if not graph.exists():  # Paddle before PIR writes the program as model.pdmodel
        graph = directory / "model.pdmodel"
    config = paddle.inference.Config(str(graph), str(directory / "model.pdiparams"))
    config.disable_gpu()
    return paddle.inference.create_predictor(config)


def _run_predictor(directory: Path, features: np.ndarray) -> np.ndarray:
    predictor = _predictor(directory)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(features.shape))
    handle.copy_from_cpu(features)
    predictor.run()
    result: np.ndarray = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    return result


def _raw_features(frame: pd.DataFrame, described: dict[str, Any]) -> np.ndarray:
    """The rows as features.json asks for them: numbers as they are (NaN when missing), a text
    column as its category's index (-1 when the model never saw the value)."""
    columns = []
    for item in described["inputs"]:
        values = frame[item["column"]]
        if item["type"] == "number":
            columns.append(pd.to_numeric(values).astype(float).to_numpy())
        else:
            lookup = {category: i for i, category in enumerate(item["categories"])}
            columns.append(np.array([lookup.get(str(v), -1) for v in values], dtype=np.float64))
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float64)


def _with_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows plus a missing number and a category the model never saw."""
    gappy = frame.copy()
    gappy.loc[gappy.index[0], "zeta"] = np.nan
    gappy.loc[gappy.index[1], "colour"] = "violet"
    return gappy


@pytest.mark.parametrize(
    ("model", "classes"), [("logistic", 2), ("mlp", 2), ("mlp", 3), ("logistic", 3)]
)
def test_an_exported_network_predicts_as_teeflow_on_raw_features(
    tmp_path: Path, model: str, classes: int
) -> None:
    frame = unordered_table()
    if classes == 3:
        frame["label"] = np.where(
            frame["zeta"] > 5300, "high", np.where(frame["alpha"] > -40, "low", "mid")
        )
    trained = run_builtin(
        "tabular-train",
        {"t": frame.to_csv(index=False).encode()},
        {"label_column": "label", "id_column": "id", "model": model, **FAST},
        ("model",),
        tmp_path / "scratch",
    ).outputs["model"]
    rows = _with_gaps(frame)

    described = export_model(trained, tmp_path / "export")
    exported = _run_predictor(tmp_path / "export", _raw_features(rows, described))

    teeflow = TabularModel.from_bytes(trained)
    expected = teeflow.probabilities(teeflow.preprocessor.transform(rows))
    if classes == 2:
        expected = expected[:, -1:]
    assert described["format"] == "paddle-inference" and described["preprocessing_in_graph"]
    assert [item["column"] for item in described["inputs"]] == ["zeta", "mid", "alpha", "colour"]
    assert exported.shape == expected.shape
    # float32 network: the inference engine fuses layers (oneDNN), so the last bits differ
    np.testing.assert_allclose(exported, expected, rtol=0, atol=1e-6)


def test_an_exported_gbdt_is_a_lightgbm_model_that_predicts_as_teeflow(tmp_path: Path) -> None:
    import lightgbm

    frame = unordered_table()
    trained = run_builtin(
        "tabular-train",
        {"t": frame.to_csv(index=False).encode()},
        {"label_column": "label", "id_column": "id", "model": "gbdt", "seed": 0},
        ("model",),
        tmp_path / "scratch",
    ).outputs["model"]
    teeflow = TabularModel.from_bytes(trained)
    rows = _with_gaps(frame)

    described = export_model(trained, tmp_path / "export")
    booster = lightgbm.Booster(model_file=str(tmp_path / "export" / "model.txt"))
    encoded = teeflow.preprocessor.transform(rows)
    exported = booster.predict(encoded, raw_score=True)

    assert described["format"] == "lightgbm-text" and not described["preprocessing_in_graph"]
    assert described["encoded_features"] == teeflow.preprocessor.encoded_columns
    np.testing.assert_array_equal(exported, raw_scores(teeflow.network, encoded)[:, 0])
    # LightGBM's own sigmoid and teeflow's differ in the last bit at most
    np.testing.assert_allclose(
        booster.predict(encoded), teeflow.probabilities(encoded)[:, -1], rtol=1e-15, atol=0
    )


@pytest.mark.parametrize("model", ["cnn", "resnet18"])
def test_an_exported_image_model_classifies_as_teeflow_with_normalisation_inside(
    tmp_path: Path, model: str
) -> None:
    scans = toy_scans(n=8, sizes=(12, 20), seed=1)
    trained = run_builtin(
        "image-classify-train",
        {"a": scans},
        {
            "model": model,
            "epochs": 1,
            "batch_size": 8,
            "seed": 0,
            "image_size": [16, 16],
            "mean": [0.4],
            "std": [0.3],
        },
        ("model",),
        tmp_path / "scratch",
    ).outputs["model"]
    teeflow = ImageModel(trained)
    images, _ = load_unlabelled(
        toy_scans(n=3, sizes=(30,), seed=2), what="scans", transform=ImageTransform(size=(16, 16))
    )

    described = export_model(trained, tmp_path / "export")
    exported = _run_predictor(tmp_path / "export", images)

    assert described["inputs"]["shape"] == ["N", 1, 16, 16]
    assert json.loads((tmp_path / "export" / "features.json").read_text())["outputs"] == {
        "probabilities": teeflow.classes
    }
    np.testing.assert_allclose(exported, teeflow.probabilities(images), rtol=0, atol=1e-6)


def test_a_file_that_is_not_a_teeflow_model_is_refused_with_why(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="not a valid zip"):
        export_model(b"id,label\n1,0\n", tmp_path / "export")
