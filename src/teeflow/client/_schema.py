"""A member's local check of a file before it is sealed, and the schema summary it yields.

``inspect_data`` reads the plaintext on the member's own machine (it never leaves it) and either
returns a schema summary or raises ClientError saying what is wrong in the member's terms (the
column, the line, the file in the zip). The summary is::

    {"format": "csv" | "parquet" | "zip" | "npz", "rows": int,
     "columns": [{"name": str, "type": "integer" | "number" | "text" | "boolean" | ...}],
     "classes": {"benign": 120, ...}}          # images only

It holds no values: names, types and counts. It stays in the member's home unless the owner
publishes it (``Client.publish_schema``, signed; docs/privacy.md).
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from teeflow.client._errors import ClientError

__all__ = ["checked_schema", "detect_format", "inspect_data"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
_MAX_ZIP_ENTRIES = 1_000_000


CHECKED_SUFFIXES = (".csv", ".parquet", ".zip", ".npz")


def checked_schema(source: Path | bytes, *, kind: str, name: str = "") -> dict[str, Any] | None:
    """The schema summary of an upload, checked; None for data that is not a table or images
    (kind model, function, or other without a table or archive file suffix). ClientError when
    a table or image file is unusable (see :func:`inspect_data`); its message calls in-memory
    data by ``name``."""
    filename = source.name if isinstance(source, Path) else ""
    tabular = kind in ("table", "images") or (
        kind == "other" and filename.lower().endswith(CHECKED_SUFFIXES)
    )
    if not tabular:
        return None
    data = source.read_bytes() if isinstance(source, Path) else source
    return inspect_data(data, filename=filename or name)


def detect_format(data: bytes, *, filename: str = "") -> str:
    """``parquet``, ``npz``, ``zip`` or ``csv`` (by magic bytes, then the file name)."""
    if data[:4] == b"PAR1":
        return "parquet"
    if data[:4] == b"PK\x03\x04" or filename.lower().endswith((".zip", ".npz")):
        return "npz" if filename.lower().endswith(".npz") or _is_npz(data) else "zip"
    return "csv"


def _is_npz(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return bool(names) and all(name.endswith(".npy") for name in names)


def inspect_data(data: bytes, *, filename: str = "") -> dict[str, Any]:
    """Check a table or image archive and return its schema summary (see the module docstring).

    Raises ClientError for a file a task could not read: not UTF-8, truncated, unparsable, no
    rows, duplicate or empty column names, non-finite numbers, a zip without class folders.
    """
    where = filename or "the file"
    fmt = detect_format(data, filename=filename)
    if fmt == "zip":
        return _inspect_zip(data, where)
    if fmt == "npz":
        return _inspect_npz(data, where)
    return _inspect_table(data, where, fmt)


def _inspect_table(data: bytes, where: str, fmt: str) -> dict[str, Any]:
    import pandas as pd

    if fmt == "csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ClientError(
                f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                "save it as UTF-8 CSV and upload it again"
            ) from None
        if not text.strip():
            raise ClientError(f"{where} is empty; a table needs a header line and rows")
        _check_complete_last_line(text, where)
        try:
            frame = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, ValueError) as exc:
            raise ClientError(f"{where} is not a readable CSV table: {exc}") from None
    else:
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise ClientError(
                f"{where} is not a readable Parquet file (truncated or damaged?): "
                f"{type(exc).__name__}"
            ) from None
    return _table_summary(frame, where, fmt)


def _check_complete_last_line(text: str, where: str) -> None:
    """A file cut off mid-row: its last line has fewer fields than the header."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or text.endswith("\n"):
        return
    fields = lines[0].count(",") + 1
    filled = lines[-1].rstrip(",").count(",") + 1  # a cut right after a comma leaves it last
    if filled < fields:
        raise ClientError(
            f"{where} looks truncated: its last line (line {len(lines)}) has {filled} of "
            f"{fields} fields and no line end; upload the complete file"
        )


def _table_summary(frame: Any, where: str, fmt: str) -> dict[str, Any]:
    import numpy as np

    names = [str(name) for name in frame.columns]
    unnamed = [n for n in names if not n.strip() or n.startswith("Unnamed: ")]
    if unnamed:
        raise ClientError(f"{where}: the header has an empty column name; name every column")
    duplicates = sorted({n for n in names if names.count(n) > 1} | _pandas_renamed(names))
    if duplicates:
        raise ClientError(f"{where}: column name(s) {', '.join(duplicates)} appear twice")
    if len(frame) == 0:
        raise ClientError(f"{where} has a header but no rows")
    columns = []
    for name in names:
        series = frame[name]
        kind = _column_type(series)
        if kind in ("integer", "number"):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            bad = ~np.isfinite(values) & ~np.isnan(values)
            huge = np.isfinite(values) & (np.abs(values) > 1e300)
            if bad.any() or huge.any():
                row = int(np.flatnonzero(bad | huge)[0]) + 1
                raise ClientError(
                    f"{where}: column {name!r} holds a non-finite or overflowing number "
                    f"(data row {row}); replace it with a finite value or leave the cell empty"
                )
        missing = int(series.isna().sum())
        columns.append({"name": name, "type": kind, **({"missing": missing} if missing else {})})
    return {"format": fmt, "rows": len(frame), "columns": columns}


def _pandas_renamed(names: list[str]) -> set[str]:
    """pandas renames a repeated CSV header ``a, a`` to ``a, a.1``."""
    return {n.rsplit(".", 1)[0] for n in names if "." in n and n.rsplit(".", 1)[0] in names}


def _column_type(series: Any) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        floats = series.dropna()
        whole = bool(len(floats)) and bool((floats == floats.round()).all())
        return "integer" if whole and all(map(math.isfinite, floats)) else "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def _inspect_zip(data: bytes, where: str) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if len(infos) > _MAX_ZIP_ENTRIES:
                raise ClientError(f"{where} holds more than {_MAX_ZIP_ENTRIES} files")
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        raise ClientError(
            f"{where} is not a readable zip (truncated or damaged?); zip the class folders again"
        ) from None
    if damaged is not None:
        raise ClientError(f"{where}: {damaged!r} in the zip is damaged (CRC mismatch)")
    classes: dict[str, int] = {}
    loose: list[str] = []
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.name.startswith(".") or "__MACOSX" in path.parts:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if len(path.parts) < 2:
            loose.append(info.filename)
            continue
        classes[path.parts[-2]] = classes.get(path.parts[-2], 0) + 1
    if loose:
        raise ClientError(
            f"{where}: image(s) such as {loose[0]!r} lie outside a class folder; put each image "
            "in a folder named after its class (e.g. benign/img1.png)"
        )
    if not classes:
        raise ClientError(f"{where} holds no images ({', '.join(IMAGE_SUFFIXES)}) in class folders")
    return {
        "format": "zip",
        "rows": sum(classes.values()),
        "classes": dict(sorted(classes.items())),
    }


def _inspect_npz(data: bytes, where: str) -> dict[str, Any]:
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            shapes = {name: tuple(archive[name].shape) for name in archive.files}
            labels = archive[_label_key(archive.files)] if _label_key(archive.files) else None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ClientError(f"{where} is not a readable .npz archive: {exc}") from None
    rows = max((shape[0] for shape in shapes.values() if shape), default=0)
    summary: dict[str, Any] = {
        "format": "npz",
        "rows": int(rows),
        "arrays": {name: list(shape) for name, shape in sorted(shapes.items())},
    }
    if labels is not None:
        values, counts = np.unique(np.asarray(labels).reshape(-1), return_counts=True)
        summary["classes"] = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    return summary


def _label_key(names: list[str]) -> str | None:
    return next((n for n in ("train_labels", "labels", "y") if n in names), None)
