"""Image models end to end, over real HTTP with real executor processes (issue 12, "Done when").

A CNN evaluated on its own test split reproduces the metrics training reported; a CNN trained on
two hospitals' scans of different sizes, kept by its recipient as a dataset without re-upload,
classifies new mixed-size scans the same way through ``image-classify-predict`` and through an
``image-serve`` session.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from teeflow.functions.datasets import toy_scans

from .conftest import MemberFactory
from .test_dl_correct import _bytes, _propose_images, _run


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy 12x12 grey images per class: class 0 bright on top, class 1 at the bottom."""
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 90, size=(2 * n, 12, 12)).astype(np.uint8)
    labels = np.repeat([0, 1], n)
    images[:n, :6] += 120
    images[n:, 6:] += 120
    order = rng.permutation(2 * n)
    return images[order], labels[order, None]


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_a_cnn_evaluated_on_its_test_split_reproduces_the_training_metrics(
    member: MemberFactory,
) -> None:
    hospital = member("hospital")
    train_x, train_y = _halves(24, seed=1)
    test_x, test_y = _halves(12, seed=2)
    scans = hospital.upload_dataset(
        _npz(train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y),
        name="scans",
        kind="images",
    )
    train = _run(
        hospital,
        "image-classify-train",
        inputs={"scans": scans["id"]},
        outputs={"model": {"recipients": ["hospital"]}, "metrics": {"recipients": ["hospital"]}},
        approvers=[hospital],
        arguments={"epochs": 2, "batch_size": 16, "seed": 0},
    )
    metrics = json.loads(_bytes(hospital, train, "metrics"))
    model = hospital.keep_output(train["id"], "model")
    held_back = hospital.upload_dataset(
        _npz(train_images=test_x, train_labels=test_y), name="held-back", kind="images"
    )

    evaluated = _run(
        hospital,
        "evaluate",
        inputs={"model": model["id"], "images": held_back["id"]},
        outputs={"metrics": {"recipients": ["hospital"]}},
        approvers=[hospital],
    )

    result = json.loads(_bytes(hospital, evaluated, "metrics"))
    assert metrics["test"] and {k: result[k] for k in metrics["test"]} == metrics["test"]
    assert result["n"] == 24


def test_mixed_size_scans_train_then_predict_and_serve_alike(member: MemberFactory) -> None:
    a, b = member("hospital-a"), member("hospital-b")
    ds_a = a.upload_dataset(toy_scans(sizes=(12, 20), seed=1), name="scans-a", kind="images")
    ds_b = b.upload_dataset(toy_scans(sizes=(30, 9), seed=2), name="scans-b", kind="images")
    train = _propose_images(a, {"a": ds_a["id"], "b": ds_b["id"]}, [a, b])
    done = a.wait(train["id"], timeout=300)
    assert done["status"] == "succeeded", done["failure_reason"]
    model = a.keep_output(done["id"], "model")
    new_scans = toy_scans(n=3, sizes=(25, 40, 11), seed=3)
    new = a.upload_dataset(new_scans, name="new-scans", kind="images")
    predicted = _run(
        a,
        "image-classify-predict",
        inputs={"model": model["id"], "images": new["id"]},
        outputs={"predictions": {"recipients": ["hospital-a"]}},
        approvers=[a],
    )
    batch = pd.read_csv(io.BytesIO(_bytes(a, predicted, "predictions")))

    session = a.propose(
        "image-serve",
        inputs={"model": model["id"]},
        outputs={"usage": {"recipients": ["hospital-a"]}},
        arguments={"requesters": ["hospital-a"]},
    )
    a.approve(session["id"])
    a.run(session["id"])
    try:
        answer = a.open_session(session["id"]).request(new_scans, timeout=120)
    finally:
        a.cancel(session["id"])

    served = pd.DataFrame(answer["predictions"])
    assert len(batch) == 6 and served["name"].tolist() == batch["name"].tolist()
    assert served["predicted"].tolist() == batch["predicted"].tolist()
    for column in ("p_bottom", "p_top"):
        np.testing.assert_allclose(served[column], batch[column], rtol=0, atol=1e-6)
