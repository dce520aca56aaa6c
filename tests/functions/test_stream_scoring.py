"""tabular-predict on one CSV table streams: the same bytes out as the whole-table path, with a
bounded number of input bytes read ahead of the predictions written, whatever the table's length."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest_dl import run_builtin

from teeflow.crypto import DataKey, seal_bytes
from teeflow.functions.api import Context, FunctionError, InputData, OutputData
from teeflow.functions.builtins import tabular_predict
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.dl import stream_scoring

BLOCK = 256  # rows per block in these tests: many blocks from a small table


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    data = breast_cancer_hospitals()
    train = run_builtin(
        "tabular-train",
        {"a": data["hospital_a.csv"], "b": data["hospital_b.csv"]},
        {"label_column": "malignant", "id_column": "patient_id", "epochs": 3, "seed": 0},
        ("model", "metrics"),
        tmp_path_factory.mktemp("train"),
    )
    return train.outputs["model"]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_scoring, "ROWS_PER_BLOCK", BLOCK)


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    base = pd.read_csv(io.BytesIO(breast_cancer_hospitals()["new_patients.csv"]))
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    frame["patient_id"] = np.arange(rows) * 7 + 3
    return frame


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def _predict(
    model: bytes, table: bytes, *, stream: bool, sealed: bool = True, args: Any = None
) -> bytes:
    """tabular-predict's output for ``table``: as it runs now (``stream``), or forced down the
    whole-table path, the reference the stream must match byte for byte."""
    key = DataKey.generate()
    source = (
        InputData.sealed("table", seal_bytes(table, key, chunk_size=4096), key, owner="o")
        if sealed
        else InputData("table", table, owner="o")
    )
    out = OutputData("predictions")
    ctx = Context(
        inputs={"model": InputData("model", model), "table": source},
        args=args or {},
        outputs={"predictions": out},
        scratch=Path("/nonexistent"),
    )
    tabular_predict.run(ctx, stream=stream)
    return out.getvalue()


def _variants() -> dict[str, pd.DataFrame]:
    frame = _table(5 * BLOCK + 17)
    gaps = frame.copy()
    gaps.loc[[3, 2 * BLOCK + 1, 4 * BLOCK + 9], gaps.columns[2]] = np.nan  # filled with the mean
    late_nan_id = frame.copy()
    late_nan_id["patient_id"] = late_nan_id["patient_id"].astype("Int64")
    late_nan_id.loc[4 * BLOCK + 2, "patient_id"] = pd.NA  # whole table: float ids ("10.0")
    text_ids = frame.copy()
    text_ids["patient_id"] = [f"p{i}" for i in range(len(frame))]
    text_ids.loc[3 * BLOCK, "patient_id"] = "12"  # a block of such ids would be read as numbers
    return {
        "ids": frame,
        "no id column (row numbers)": frame.drop(columns=["patient_id"]),
        "missing feature values": gaps,
        "an id missing in a late block": late_nan_id,
        "number-like text ids": text_ids,
        "exactly one block": frame.iloc[:BLOCK],
        "one row": frame.iloc[:1],
    }


@pytest.mark.parametrize("variant", list(_variants()))
def test_streamed_predictions_are_byte_identical_to_the_whole_table_path(
    model: bytes, variant: str
) -> None:
    table = _csv(_variants()[variant])

    whole = _predict(model, table, stream=False)

    assert _predict(model, table, stream=True) == whole
    assert _predict(model, table, stream=True, sealed=False) == whole
    assert _predict(model, table, stream=True, args={"threshold": 0.9}) == _predict(
        model, table, stream=False, args={"threshold": 0.9}
    )


def test_a_type_change_in_a_late_block_is_detected(model: bytes) -> None:
    """The case the fallback exists for: the stream alone would print ``10`` for ``10.0``."""
    frame = _variants()["an id missing in a late block"]
    scorer = stream_scoring.score_csv_stream
    from teeflow.functions.dl.scoring import TabularModel

    with pytest.raises(stream_scoring.NotStreamable):
        scorer(
            TabularModel.from_bytes(model),
            io.BytesIO(_csv(frame)),
            io.BytesIO(),
            threshold=0.5,
            party="input 'table'",
        )


@pytest.mark.parametrize("sealed", [True, False])
def test_errors_name_the_input_as_before(model: bytes, sealed: bool) -> None:
    bad = _table(3 * BLOCK)
    bad.loc[2 * BLOCK + 5, bad.columns[1]] = np.inf

    with pytest.raises(FunctionError, match="infinite value") as streamed:
        _predict(model, _csv(bad), stream=True, sealed=sealed)
    with pytest.raises(FunctionError, match="lacks the model's feature column"):
        _predict(model, _csv(bad.drop(columns=[bad.columns[1]])), stream=True, sealed=sealed)
    with pytest.raises(FunctionError, match="holds no rows"):
        _predict(model, _csv(bad.iloc[:0]), stream=True, sealed=sealed)
    assert "input 'table' (owner o)" in str(streamed.value)


def test_a_chunk_that_fails_authentication_fails_the_function(model: bytes) -> None:
    key = DataKey.generate()
    sealed = bytearray(seal_bytes(_csv(_table(4 * BLOCK)), key, chunk_size=4096))
    sealed[-100] ^= 1  # the last chunk: blocks before it were already scored
    ctx = Context(
        inputs={
            "model": InputData("model", model),
            "table": InputData.sealed("table", bytes(sealed), key),
        },
        args={},
        outputs={"predictions": OutputData("predictions")},
        scratch=Path("/nonexistent"),
    )

    with pytest.raises(FunctionError, match="input 'table' does not decrypt"):
        tabular_predict.run(ctx)


class _CountingInput(InputData):
    """The table, handed to the function through a reader that counts what it consumed."""

    def __init__(self, data: bytes) -> None:
        super().__init__("table", data)
        self.consumed = 0

    def open(self) -> Any:
        counter = self

        class Reader(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                part = super().read(size)
                counter.consumed += len(part)
                return part

            def readinto(self, buffer: Any) -> int:
                got = super().readinto(buffer)
                counter.consumed += got
                return got

        return Reader(counter.data)


class _CountingOutput(OutputData):
    """Records, at each write, the input bytes consumed and the prediction rows written before
    it: the rows read but not yet answered are what the function holds."""

    def __init__(self, source: _CountingInput) -> None:
        super().__init__("predictions")
        self.source = source
        self.marks: list[tuple[int, int]] = []
        self.lines = 0

    def write(self, data: bytes) -> None:
        self.marks.append((self.source.consumed, max(0, self.lines - 1)))  # less the header
        super().write(data)
        self.lines += data.count(b"\n")


def _read_ahead(model: bytes, rows: int) -> int:
    """The most input bytes the function had consumed beyond the rows it had written out (the
    header counts as written)."""
    table = _csv(_table(rows))
    row_ends = np.cumsum([len(line) for line in table.splitlines(keepends=True)])
    source = _CountingInput(table)
    out = _CountingOutput(source)
    ctx = Context(
        inputs={"model": InputData("model", model), "table": source},
        args={},
        outputs={"predictions": out},
        scratch=Path("/nonexistent"),
    )
    tabular_predict.run(ctx)
    assert out.lines == rows + 1
    return max(consumed - int(row_ends[written]) for consumed, written in out.marks)


def test_memory_is_bounded_by_blocks_not_by_the_table(model: bytes) -> None:
    bound = 6 * BLOCK * 220 + (1 << 18)  # a few blocks of ~200-byte rows, and pandas' buffer

    small = _read_ahead(model, 10 * BLOCK)
    large = _read_ahead(model, 80 * BLOCK)  # ~4 MB of CSV

    assert small <= bound and large <= bound, (small, large)
