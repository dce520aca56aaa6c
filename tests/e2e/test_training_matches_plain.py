"""The in-enclave trainer computes what a plain PaddlePaddle script computes: for the same data,
seed and epochs, the model an executor returns equals the plain script's weight for weight, and
its AUC is the plain script's AUC (issue 16). The plain half below uses only pandas, scikit-learn
and Paddle, not teeflow's training code."""

from __future__ import annotations

import io
import json

import numpy as np
import paddle
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.dl.modelfile import ModelBlob

from .conftest import MemberFactory

SEED, EPOCHS, BATCH, LR, HIDDEN = 3, 6, 32, 0.01, [16]


class _PlainMLP(paddle.nn.Layer):
    def __init__(self, width: int) -> None:
        super().__init__()
        layers: list[paddle.nn.Layer] = []
        for size in HIDDEN:
            layers += [paddle.nn.Linear(width, size), paddle.nn.ReLU()]
            width = size
        self.net = paddle.nn.Sequential(*layers, paddle.nn.Linear(width, 1))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)


def _plain(tables: list[bytes]) -> tuple[dict[str, np.ndarray], float]:
    frame = pd.concat([pd.read_csv(io.BytesIO(t)) for t in tables], ignore_index=True)
    y = frame["malignant"].to_numpy().astype(np.int64)
    train, test = train_test_split(
        np.arange(len(frame)), test_size=0.2, stratify=y, random_state=SEED
    )
    features = [c for c in frame.columns if c not in ("malignant", "patient_id")]
    part = frame.iloc[train][features]
    mean, std = part.mean(), part.std(ddof=0).replace(0, 1.0)
    x_train = ((part - mean) / std).to_numpy().astype(np.float32)
    x_test = ((frame.iloc[test][features] - mean) / std).to_numpy().astype(np.float32)
    paddle.seed(SEED)
    with paddle.utils.unique_name.guard():
        net = _PlainMLP(x_train.shape[1])
        opt = paddle.optimizer.Adam(learning_rate=LR, parameters=net.parameters())
        shuffler = np.random.RandomState(SEED)
        for _ in range(EPOCHS):
            order = shuffler.permutation(len(x_train))
            for begin in range(0, len(order), BATCH):
                index = order[begin : begin + BATCH]
                out = net(paddle.to_tensor(x_train[index])).squeeze(-1)
                target = paddle.to_tensor(y[train][index]).astype("float32")
                loss = paddle.nn.functional.binary_cross_entropy_with_logits(out, target)
                loss.backward()
                opt.step()
                opt.clear_grad()
    net.eval()
    with paddle.no_grad():
        logits = net(paddle.to_tensor(x_test)).numpy()[:, 0].astype(np.float64)
    weights = {k: v.numpy() for k, v in net.state_dict().items()}
    return weights, float(roc_auc_score(y[test], logits))


def test_enclave_training_equals_a_plain_paddle_script(member: MemberFactory) -> None:
    # The platform fixture checkpoints after every epoch, so every epoch also goes through the
    # checkpoint and progress path that runs beside the training.
    data = breast_cancer_hospitals()
    tables = [data["hospital_a.csv"], data["hospital_b.csv"]]
    ann, ben, res = member("ann-h"), member("ben-h"), member("res-p")
    inputs = {
        slot: owner.upload_dataset(table, name=f"{slot}.csv", kind="table")["id"]
        for slot, owner, table in (("hospital_a", ann, tables[0]), ("hospital_b", ben, tables[1]))
    }
    task = res.propose(
        "tabular-train",
        inputs=inputs,
        outputs={"model": {"recipients": ["res-p"]}, "metrics": {"recipients": ["res-p"]}},
        arguments={
            "label_column": "malignant",
            "id_column": "patient_id",
            "model": "mlp",
            "hidden": HIDDEN,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "learning_rate": LR,
            "seed": SEED,
        },
    )
    for party in (ann, ben, res):
        party.approve(task["id"])
    res.run(task["id"])
    done = res.wait(task["id"], timeout=600)
    assert done["status"] == "succeeded", done["failure_reason"]

    blob, report = res.output(task["id"], "model"), res.output(task["id"], "metrics")
    assert isinstance(blob, bytes) and isinstance(report, bytes)
    model = ModelBlob.from_bytes(blob, kind="tabular")
    metrics = json.loads(report)
    weights, auc = _plain(tables)
    assert sorted(model.weights) == sorted(weights)
    for name, plain in weights.items():
        assert np.array_equal(model.weights[name], plain), f"{name} differs from the plain run"
    assert metrics["auc"] == round(auc, 6)
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, EPOCHS + 1))
