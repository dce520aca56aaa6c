"""Id columns named differently at each party (``id_columns``, like pandas' left_on/right_on), for
psi, private-join-sum, tabular train / predict / evaluate / serve; and a served model whose
bureau columns the enclave holds and joins to each live request by id."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.functions.api import Context, FunctionError, InputData
from teeflow.functions.builtins import tabular_serve

ARGS = {"label_column": "label", "epochs": 10, "learning_rate": 0.05, "seed": 0}


def parties(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A bank (``customer_no``, ``zeta``, ``label``) and a bureau (``cust_id``, ``alpha``,
    ``region``); the bureau holds most of the bank's customers and some others."""
    rng = np.random.RandomState(seed)
    zeta, alpha = rng.normal(size=n), rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * zeta - 2.5 * alpha)))).astype(int)
    ids = [f"k{i:04d}" for i in range(n)]
    bank = pd.DataFrame({"customer_no": ids, "zeta": zeta * 50, "label": label})
    bureau = pd.DataFrame(
        {"cust_id": ids, "alpha": alpha + 3, "region": rng.choice(["n", "s"], size=n)}
    )
    return bank.iloc[: n - 10], pd.concat(
        [bureau.iloc[5:], pd.DataFrame({"cust_id": ["zz1"], "alpha": [0.0], "region": ["n"]})]
    )


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


NAMES = {"bank": "customer_no", "bureau": "cust_id"}


def test_psi_and_join_sum_take_each_partys_own_id_column(tmp_path: Path) -> None:
    bank = b"customer_no,amount\nu1,10\nu2,20\nu3,30\n"
    shop = b"amount,cust_id\n5,u2\n7,u3\n1,u9\n"

    psi = run_builtin(
        "psi",
        {"bank": bank, "shop": shop},
        {"id_columns": {"bank": "customer_no", "shop": "cust_id"}},
        ("flags:bank", "intersection_size"),
        tmp_path,
    )
    summed = run_builtin(
        "private-join-sum",
        {"bank": bank, "shop": shop},
        {"id_column": "customer_no", "id_columns": {"shop": "cust_id"}},
        ("result",),
        tmp_path,
    )

    assert psi.outputs["flags:bank"] == b"id,in_intersection\nu1,0\nu2,1\nu3,1\n"
    assert psi.json("intersection_size") == {"size": 2}
    assert summed.outputs["result"] == b"id,amount\nu2,25\nu3,37\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"id_columns": {"telco": "x"}}, "names input slot\\(s\\) telco, which this task"),
        ({"id_columns": ["bank"]}, "must map input slots to column names"),
        ({"id_columns": {"bank": "nope", "bureau": "cust_id"}}, "input 'bank' has no id column"),
    ],
)
def test_a_wrong_id_mapping_says_what_to_fix(tmp_path: Path, args: dict, message: str) -> None:
    bank, bureau = parties()
    with pytest.raises(FunctionError, match=message):
        run_builtin(
            "tabular-train",
            {"bank": _csv(bank), "bureau": _csv(bureau)},
            {**ARGS, **args},
            ("metrics",),
            tmp_path,
        )


def test_train_predict_evaluate_with_differently_named_ids(tmp_path: Path) -> None:
    bank, bureau = parties()
    inputs = {"bank": _csv(bank), "bureau": _csv(bureau)}
    train = run_builtin(
        "tabular-train",
        inputs,
        {**ARGS, "id_columns": NAMES},
        ("model", "metrics"),
        tmp_path,
    )
    metrics = train.json("metrics")
    assert metrics["id_column"] == "customer_no"
    assert metrics["n_train"] + metrics["n_test"] == 185  # ids both hold
    assert metrics["columns_per_input"] == {
        "bank": ["zeta", "label"],
        "bureau": ["alpha", "region"],
    }

    predicted = run_builtin(
        "tabular-predict",
        {"model": train.outputs["model"], **inputs},
        {"id_columns": {"bureau": "cust_id"}},
        ("predictions",),
        tmp_path,
    )
    evaluated = run_builtin(
        "evaluate",
        {"model": train.outputs["model"], **inputs},
        {"id_columns": {"bureau": "cust_id"}},
        ("metrics",),
        tmp_path,
    )

    table = pd.read_csv(io.BytesIO(predicted.outputs["predictions"]))
    assert list(table.columns) == ["customer_no", "probability", "label"] and len(table) == 185
    assert evaluated.json("metrics")["auc"] > 0.85
    with pytest.raises(
        FunctionError,
        match=r"'customer_no' is missing from input.*map it with the argument 'id_columns'",
    ):
        run_builtin(
            "evaluate", {"model": train.outputs["model"], **inputs}, {}, ("metrics",), tmp_path
        )


def _session(model: bytes, held: dict[str, bytes], args: dict) -> tabular_serve.TabularPredictor:
    inputs = {"model": model, **held}
    ctx = Context(
        inputs={slot: InputData(slot, data) for slot, data in inputs.items()},
        args={"requesters": ["bank"], **args},
        outputs={},
        scratch=Path("."),
    )
    return tabular_serve.open_session(ctx)


def test_serving_joins_the_held_bureau_table_to_each_live_request(tmp_path: Path) -> None:
    bank, bureau = parties()
    inputs = {"bank": _csv(bank), "bureau": _csv(bureau)}
    model = run_builtin(
        "tabular-train", inputs, {**ARGS, "id_columns": NAMES}, ("model",), tmp_path
    ).outputs["model"]
    batch = run_builtin(
        "tabular-predict",
        {"model": model, **inputs},
        {"id_columns": {"bureau": "cust_id"}},
        ("predictions",),
        tmp_path,
    )
    expected = pd.read_csv(io.BytesIO(batch.outputs["predictions"])).head(8)
    session = _session(
        model, {"bureau": _csv(bureau)}, {"id_columns": {"bureau": "cust_id", "request": "cno"}}
    )
    live = bank.set_index("customer_no").loc[expected["customer_no"], ["zeta"]].reset_index()
    live = live.rename(columns={"customer_no": "cno"})

    as_json = session.predict(json.dumps({"rows": live.to_dict("records")}).encode(), max_rows=100)
    as_csv = session.predict(_csv(live), max_rows=100)

    for answer in (as_json, as_csv):
        got = pd.DataFrame(answer["predictions"])
        assert got["cno"].tolist() == expected["customer_no"].tolist()
        assert got["probability"].tolist() == expected["probability"].tolist()
    with pytest.raises(FunctionError, match="1 request row\\(s\\) have an id that the held"):
        session.predict(
            json.dumps({"rows": [{"cno": "k0001", "zeta": 1.0}]}).encode(), max_rows=100
        )
    with pytest.raises(FunctionError, match="come from the held input"):
        session.predict(
            json.dumps({"rows": [{"cno": "k0007", "zeta": 1, "alpha": 2}]}).encode(), max_rows=100
        )
    with pytest.raises(FunctionError, match="needs the id column 'cno'"):
        session.predict(json.dumps({"rows": [{"zeta": 1.0}]}).encode(), max_rows=100)
