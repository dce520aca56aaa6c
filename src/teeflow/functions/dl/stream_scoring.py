"""Scoring one CSV table as a stream: parse, predict and encode a block of rows at a time.

``tabular-predict`` on a single CSV table does not need the whole table in memory: the rows are
read ``rows_per_block`` at a time (pandas' own C parser, the one the whole-table path uses),
encoded, scored at batch 256 and written out as predictions CSV before the next block is read. The
memory it holds is a block of rows and its predictions, whatever the table's length.

The output is byte for byte what the whole-table path writes (:func:`score_inputs`, then
``DataFrame.to_csv``), because every value is parsed by the same parser and formatted by the same
writer. The one thing a block cannot know is the type pandas would give a column over the whole
table: a column of whole numbers that holds a decimal or an empty cell further down is read as
``int64`` in the blocks before and as ``float64`` over the whole table, and would print ``7``
instead of ``7.0``. The columns whose printed form depends on that (the id column, and text
features, which are encoded from their printed form) are therefore checked block by block; when
one changes type, or holds number-like text, :class:`NotStreamable` is raised and the caller
scores the table the whole-table way instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import IO, Any, Protocol

import numpy as np
import pandas as pd

from teeflow.functions.api import FunctionError
from teeflow.functions.dl.scoring import SCORING_BATCH, TabularModel, prediction_columns
from teeflow.functions.dl.tables import check_finite

__all__ = ["ROWS_PER_BLOCK", "NotStreamable", "score_csv_stream"]

ROWS_PER_BLOCK = 65_536
"""Rows parsed, scored and written at a time (a multiple of the scoring batch, 256)."""


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class NotStreamable(Exception):
    """The table's column types are not settled block by block; score it whole instead."""


def score_csv_stream(
    model: TabularModel,
    source: IO[bytes],
    sink: Sink,
    *,
    threshold: float,
    party: str,
    rows_per_block: int | None = None,
) -> int:
    """Read a CSV table from ``source``, write its predictions CSV to ``sink``; return the rows.

    ``sink.write`` receives UTF-8 CSV text, header first, one block of rows at a time; the
    concatenation equals what ``tabular-predict`` writes for the whole table. ``party`` names the
    input in error messages. Raises FunctionError for a table the model cannot score (as the
    whole-table path does; an error found in a later block is raised after the earlier blocks were
    written), NotStreamable when the column types change between blocks (see the module
    docstring): the caller must then discard what ``sink`` received. ``rows_per_block``
    (default :data:`ROWS_PER_BLOCK`) must be a multiple of the scoring batch, 256, so that every
    row is scored in the same batch as on the whole-table path.
    """
    rows_per_block = rows_per_block or ROWS_PER_BLOCK
    if rows_per_block % SCORING_BATCH:
        raise ValueError(f"rows_per_block must be a multiple of {SCORING_BATCH}")
    id_column = model.config.get("id_column")
    names = model.class_names
    watched = _Watched([c for c in (id_column, *model.preprocessor.categorical) if c])
    rows = 0
    for block in _blocks(source, rows_per_block, party):
        check_finite(block, party=party)
        watched.check(block)
        probabilities = model.probabilities(model.preprocessor.transform(block))
        if id_column and id_column in block.columns:
            ids: Any = block[id_column].to_numpy()
            key = str(id_column)
        else:
            ids, key = range(rows, rows + len(block)), "row"
        columns = prediction_columns(
            ids,
            probabilities if names else probabilities[:, -1],
            id_name=key,
            threshold=threshold,
            class_names=names,
        )
        text = pd.DataFrame(columns).to_csv(index=False, header=rows == 0)
        sink.write(text.encode("utf-8"))
        rows += len(block)
    if rows == 0:
        raise FunctionError(f"{party} holds no rows")
    return rows


def _blocks(source: IO[bytes], rows_per_block: int, party: str) -> Iterator[pd.DataFrame]:
    """The table's blocks of rows, the next one parsed on a helper thread while the caller
    scores this one (pandas' tokenizer and Paddle both release the GIL). At most
    :data:`_AHEAD` parsed blocks wait, so the memory held stays a few blocks."""
    ready: queue.Queue[pd.DataFrame | BaseException | None] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def hand(item: pd.DataFrame | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def parse() -> None:
        try:
            with pd.read_csv(source, chunksize=rows_per_block) as reader:
                for block in reader:
                    if not hand(block):
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand(exc)
            return
        hand(None)

    worker = threading.Thread(target=parse, name="teeflow-csv", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, (ValueError, UnicodeDecodeError, OSError)):
                raise FunctionError(f"{party} is not a readable CSV or Parquet table") from item
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


_AHEAD = 1
"""Parsed blocks that may wait for the scorer (besides the one being parsed)."""


class _Watched:
    """The dtypes of the columns whose printed form the whole-table path would decide."""

    def __init__(self, columns: list[str]) -> None:
        self._columns = columns
        self._dtypes: dict[str, np.dtype[Any]] | None = None

    def check(self, block: pd.DataFrame) -> None:
        dtypes = {c: block[c].dtype for c in self._columns if c in block.columns}
        if self._dtypes is None:
            self._dtypes = dtypes
        elif dtypes != self._dtypes:
            raise NotStreamable("a column's type changes between blocks")
        for column, dtype in dtypes.items():
            if dtype.kind == "O" and _number_like(block[column]):
                raise NotStreamable(f"text column {column!r} holds number-like values")


def _number_like(values: pd.Series) -> bool:
    """Whether any text in ``values`` would parse as a number (so a block of only such rows
    would be read as numbers over the whole table)."""
    text = values.dropna()
    return bool(pd.to_numeric(text, errors="coerce").notna().any()) if len(text) else False
