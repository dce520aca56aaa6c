"""Tables from several parties, combined inside the enclave; the preprocessing saved with a model.

Row-partitioned inputs (same columns, e.g. two hospitals) are concatenated; column-partitioned
inputs (a shared id column, e.g. a bank and a credit bureau) are inner-joined on the id. The
:class:`Preprocessor` one-hot encodes text columns (categories sorted, so the encoding does not
depend on row order) and standardises numeric columns with statistics of the training split only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from teeflow.functions.api import FunctionError, InputData

__all__ = [
    "LARGEST_NUMBER",
    "Combined",
    "Preprocessor",
    "check_finite",
    "combine_tables",
    "read_tables",
    "split_rows",
    "with_common_id",
]

PARTITIONS = ("auto", "rows", "columns")


LARGEST_NUMBER = 1e150
"""Largest magnitude a numeric cell may have: beyond it squares overflow float64 and the column's
standard deviation cannot be computed."""


def read_tables(inputs: Mapping[str, InputData], slots: list[str]) -> dict[str, pd.DataFrame]:
    """Each slot's table. FunctionError, naming the input and its owner, for an unreadable or
    empty table and for a numeric column holding an infinite value or one beyond
    :data:`LARGEST_NUMBER`. Empty cells and pandas' missing markers (``n/a``, ``NA``, ``null``)
    are missing values, which the model fills with the training mean."""
    tables: dict[str, pd.DataFrame] = {}
    for slot in slots:
        try:
            tables[slot] = inputs[slot].to_pandas()
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise FunctionError(f"input {slot!r} is not a readable CSV or Parquet table") from exc
        if tables[slot].empty:
            raise FunctionError(f"input {slot!r} holds no rows")
        check_finite(tables[slot], party=_party(inputs[slot]))
    return tables


def _party(data: InputData) -> str:
    return f"input {data.slot!r}" + (f" (owner {data.owner})" if data.owner else "")


def check_finite(frame: pd.DataFrame, *, party: str) -> None:
    """FunctionError naming the column and ``party`` if a numeric column holds an infinite value
    or one beyond :data:`LARGEST_NUMBER` (the message gives counts, never the values)."""
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = int(np.isinf(numbers).sum())
        if infinite:
            raise FunctionError(
                f"column {column!r} of {party} holds {infinite} infinite value(s); replace them "
                "with numbers, or leave the cells empty to have them filled with the mean"
            )
        huge = int((np.abs(numbers) > LARGEST_NUMBER).sum())
        if huge:
            raise FunctionError(
                f"column {column!r} of {party} holds {huge} value(s) beyond ±{LARGEST_NUMBER:g}, "
                "too large to standardise; rescale the column (e.g. to thousands) or leave "
                "those cells empty"
            )


@dataclass
class Combined:
    frame: pd.DataFrame
    partition: str
    contributions: dict[str, list[str]]
    """Slot -> the columns that slot contributed (names only, never values)."""
    id_column: str | None


def with_common_id(
    tables: dict[str, pd.DataFrame], *, id_column: str | None, id_columns: Mapping[str, str]
) -> tuple[dict[str, pd.DataFrame], str | None]:
    """The tables with each party's id column renamed to one name, and that name.

    ``id_columns`` maps a slot to its own id column; the others use ``id_column``. The common name
    is ``id_column`` when given, else the first mapped slot's name. With no ``id_columns`` the
    tables come back as they are, with ``id_column``. FunctionError when a named column is
    missing, or when renaming would collide with another column of that table.
    """
    if not id_columns:
        return tables, id_column
    key = id_column or id_columns[next(slot for slot in tables if slot in id_columns)]
    renamed: dict[str, pd.DataFrame] = {}
    for slot, frame in tables.items():
        own = id_columns.get(slot, key)
        if own not in frame.columns:
            raise FunctionError(f"input {slot!r} has no id column {own!r}")
        if own != key and key in frame.columns:
            raise FunctionError(
                f"input {slot!r} has both its id column {own!r} and a column {key!r}, the id "
                "name of the joined table; rename one of them"
            )
        renamed[slot] = frame.rename(columns={own: key})
    return renamed, key


def _id_column(tables: dict[str, pd.DataFrame], id_column: str | None) -> str:
    if id_column is not None:
        missing = [slot for slot, frame in tables.items() if id_column not in frame.columns]
        if missing:
            raise FunctionError(
                f"id column {id_column!r} is missing from input(s) {missing}; where a party "
                "names its id column differently, map it with the argument 'id_columns'"
            )
        return id_column
    shared = set.intersection(*(set(frame.columns) for frame in tables.values()))
    if len(shared) != 1:
        raise FunctionError(
            "cannot tell which column joins the tables; set the argument 'id_column'"
        )
    return str(shared.pop())


def combine_tables(
    tables: dict[str, pd.DataFrame], *, partition: str, id_column: str | None
) -> Combined:
    """Concatenate (rows) or inner-join on ``id_column`` (columns); ``auto`` picks by schema."""
    slots = list(tables)
    same_columns = all(set(tables[s].columns) == set(tables[slots[0]].columns) for s in slots)
    if partition == "auto":
        partition = "rows" if same_columns else "columns"
    if partition == "rows":
        if not same_columns:
            raise FunctionError("row-partitioned inputs must have the same columns")
        columns = list(tables[slots[0]].columns)
        frame = pd.concat([tables[s][columns] for s in slots], ignore_index=True)
        return Combined(frame, "rows", {s: columns for s in slots}, id_column)
    key = _id_column(tables, id_column)
    frame, contributions, seen = tables[slots[0]].iloc[0:0], {}, {key}
    for index, slot in enumerate(slots):
        table = tables[slot]
        if table[key].duplicated().any():
            raise FunctionError(f"input {slot!r} repeats values of id column {key!r}")
        overlap = (set(table.columns) & seen) - {key}
        if overlap:
            raise FunctionError(
                f"column(s) {sorted(overlap)} of input {slot!r} also come from "
                "another input; rename them"
            )
        contributions[slot] = [c for c in table.columns if c != key]
        seen |= set(table.columns)
        frame = table if index == 0 else frame.merge(table, on=key, how="inner")
    if frame.empty:
        raise FunctionError(f"the inputs share no value of id column {key!r}")
    frame = frame.sort_values(key, kind="mergesort").reset_index(drop=True)
    return Combined(frame, "columns", contributions, key)


def split_rows(
    target: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and the held-out split of a combined table, stratified by
    ``target``: the split ``tabular-train`` uses, so that a party can re-score either split."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(target)), test_size=test_fraction, stratify=target, random_state=seed
    )
    return np.asarray(train), np.asarray(test)


@dataclass
class Preprocessor:
    """Column encoding fitted on the training split; saved with the model as JSON."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Column -> (mean, std) of the training split; missing values become the mean."""
    categorical: dict[str, list[str]] = field(default_factory=dict)
    """Column -> categories in one-hot order; an unseen category encodes as all zeros."""

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: list[str]) -> Preprocessor:
        result = cls()
        for column in columns:
            values = frame[column]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
                present = numbers[~np.isnan(numbers)]
                with np.errstate(over="ignore", invalid="ignore"):
                    mean = float(present.mean()) if len(present) else 0.0
                    std = float(present.std()) if len(present) else 0.0
                if not (math.isfinite(mean) and math.isfinite(std)):
                    raise FunctionError(
                        f"column {column!r} has values too large to standardise; rescale it "
                        "(e.g. to thousands) or leave those cells empty"
                    )
                result.numeric[column] = (mean, std if std > 0 else 1.0)
            else:
                result.categorical[column] = sorted(values.dropna().astype(str).unique())
        return result

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def encoded_columns(self) -> list[str]:
        """The table column of each encoded feature, in order (a text column once per
        category)."""
        return [*self.numeric] + [c for c, cats in self.categorical.items() for _ in cats]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categorical.values())

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [column for column in self.columns if column not in frame.columns]
        if missing:
            raise FunctionError(f"the table lacks the model's feature column(s) {missing}")
        blocks = []
        for column, (mean, std) in self.numeric.items():
            try:
                values = pd.to_numeric(frame[column]).astype(float).fillna(mean).to_numpy()
            except (ValueError, TypeError) as exc:
                raise FunctionError(f"column {column!r} must be numeric") from exc
            blocks.append(_standardised(values, mean, std, column))
        for column, categories in self.categorical.items():
            text = frame[column].astype(str).to_numpy()
            blocks.append(text[:, None] == np.array(categories, dtype=object)[None, :])
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def transform_records(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """:meth:`transform` of ``pd.DataFrame.from_records(rows)``, without building the frame.

        The same encoding value for value (float64 arithmetic, then float32), at a fraction of the
        cost for the few rows of an online request. A key missing from some rows is a missing
        value; a feature column missing from every row is an error, as in :meth:`transform`.
        """
        present = {key for row in rows for key in row}
        missing = [column for column in self.columns if column not in present]
        if missing:
            raise FunctionError(f"the table lacks the model's feature column(s) {missing}")
        numeric = list(self.numeric.items())
        lookups = [
            ({category: i for i, category in enumerate(categories)}, column, len(categories))
            for column, categories in self.categorical.items()
        ]
        encoded: list[list[float]] = []
        for row in rows:
            values = [(_number(row.get(c), c, mean) - mean) / std for c, (mean, std) in numeric]
            for lookup, column, width in lookups:
                one_hot = [0.0] * width
                value = row.get(column)
                # str() as pandas' astype(str) spells it; a missing value matches no category.
                hit = None if _missing(value) else lookup.get(str(value))
                if hit is not None:
                    one_hot[hit] = 1.0
                values += one_hot
            encoded.append(values)
        # float64 arithmetic, then float32, as transform() does
        with np.errstate(over="ignore", invalid="ignore"):
            result = np.array(encoded, dtype=np.float32).reshape(len(rows), self.width)
        finite = np.isfinite(result).all(axis=0)
        if not finite.all():
            raise _out_of_range(self.columns[int(np.argmin(finite))])
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the feature order as lists (the order the network's inputs take)."""
        return {
            "numeric": [
                {"column": column, "mean": mean, "std": std}
                for column, (mean, std) in self.numeric.items()
            ],
            "categorical": [
                {"column": column, "categories": list(categories)}
                for column, categories in self.categorical.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        """The inverse of :meth:`to_dict`; FunctionError on anything else.

        Raises FunctionError for the mapping layout of teeflow-model/1, which lost the feature
        order when it was saved (retrain such a model).
        """
        try:
            numeric_items, categorical_items = data["numeric"], data["categorical"]
            if not isinstance(numeric_items, list) or not isinstance(categorical_items, list):
                raise FunctionError(
                    "the model's preprocessing does not record its feature order (a model "
                    "from an earlier teeflow version); train the model again"
                )
            numeric = {
                str(item["column"]): (float(item["mean"]), float(item["std"]))
                for item in numeric_items
            }
            categorical = {
                str(item["column"]): [str(x) for x in item["categories"]]
                for item in categorical_items
            }
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise FunctionError("the model's preprocessing config is malformed") from exc
        if len(numeric) != len(numeric_items) or len(categorical) != len(categorical_items):
            raise FunctionError("the model's preprocessing names a column twice")
        if not all(math.isfinite(v) for pair in numeric.values() for v in pair):
            raise FunctionError("the model's preprocessing holds a non-finite statistic")
        return cls(numeric=numeric, categorical=categorical)


def _standardised(values: np.ndarray, mean: float, std: float, column: str) -> np.ndarray:
    """``(values - mean) / std`` as a column, FunctionError if a value is infinite or falls
    outside float32's range once standardised (it would score as NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - mean) / std
        finite = np.isfinite(scaled.astype(np.float32)).all()
    if not finite:
        raise _out_of_range(column)
    return scaled[:, None]


def _out_of_range(column: str) -> FunctionError:
    return FunctionError(
        f"column {column!r} holds an infinite value or one far outside the range the model "
        "was trained on; replace it, or leave the cell empty to have it filled with the mean"
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, column: str, mean: float) -> float:
    """One value as ``pd.to_numeric(...).astype(float).fillna(mean)`` reads it."""
    if type(value) is float:  # the common case first: this runs for every feature of a request
        return mean if value != value else value
    try:
        if isinstance(value, numbers.Real):  # int, bool, numpy scalars
            number = float(value)
            return mean if math.isnan(number) else number
        if value is None or value == "":
            return mean
        text = value.strip().lower() if isinstance(value, str) else ""
        if text and text.lstrip("+-") != "nan" and "_" not in text:
            return float(text)
    except (ValueError, OverflowError):
        pass
    raise FunctionError(f"column {column!r} must be numeric")
