"""Datasets (upload with a local check and preview; mine and partners') and Propose pages.

An upload is sealed in this process under a fresh data key (``Client.upload_dataset``); the
plaintext preview is computed here and shown only to this member.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeflow.cli._session import parse_names, parse_value
from teeflow.client import ClientError
from teeflow.console.app import StateDep, page

__all__ = ["router", "table_preview"]

router = APIRouter()

_KINDS = ("table", "images", "model", "other")
_PREVIEW_ROWS = 5
_DISCLOSURE = ("progress", "errors")


def table_preview(data: bytes, filename: str) -> dict[str, Any]:
    """A local pre-flight check of a table: columns, types, rows, the first rows.

    Raises ValueError with a reason the member can act on when the file does not read as a
    CSV or Parquet table.
    """
    try:
        if filename.lower().endswith(".parquet"):
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise ValueError(f"{filename} does not read as a CSV or Parquet table: {exc}") from exc
    if frame.empty or not len(frame.columns):
        raise ValueError(f"{filename} holds no rows")
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    problems = [f"duplicate column names: {', '.join(duplicated)}"] if duplicated else []
    problems += [f"column {c!r} is empty" for c in frame.columns if frame[c].isna().all()]
    head = frame.head(_PREVIEW_ROWS).astype(str)
    return {
        "rows": len(frame),
        "columns": [(str(c), str(t)) for c, t in frame.dtypes.items()],
        "head": [list(row) for row in head.itertuples(index=False)],
        "problems": problems,
    }


def _partners(state: StateDep, extra: str = "") -> list[str]:
    """Members I deal with: the participants of my tasks, and ``extra`` (a name asked for)."""
    names = {p for task in state.client.tasks() for p in task["contract"]["participants"]}
    names |= set(parse_names(extra))
    return sorted(names - {state.me})


def known_datasets(
    state: StateDep, extra: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(mine, partners'): my own and jointly owned datasets, and the metadata (name, kind,
    published row count) of the datasets of every member I deal with."""
    mine = state.client.datasets()
    seen = {d["id"] for d in mine}
    partners = [
        d
        for name in _partners(state, extra)
        for d in state.client.datasets(owner=name)
        if d["id"] not in seen
    ]
    return mine, partners


def _datasets_page(request: Request, state: StateDep, **context: Any) -> HTMLResponse:
    owner = request.query_params.get("owner", "")
    mine, partners = known_datasets(state, owner)
    return page(
        state,
        request,
        "datasets.html",
        tab="datasets",
        mine=mine,
        partners=partners,
        owner=owner,
        kinds=_KINDS,
        **context,
    )


@router.get("/datasets", response_class=HTMLResponse)
def datasets(request: Request, state: StateDep) -> HTMLResponse:
    return _datasets_page(request, state)


@router.post("/datasets/preview", response_class=HTMLResponse)
async def preview(
    request: Request, state: StateDep, file: Annotated[UploadFile, File()]
) -> HTMLResponse:
    """The local check of a file before it is sealed (htmx fragment)."""
    data = await file.read()
    try:
        facts: dict[str, Any] | None = table_preview(data, file.filename or "upload")
        problem = None
    except ValueError as exc:
        facts, problem = None, str(exc)
    return page(state, request, "_preview.html", facts=facts, problem=problem, size=len(data))


@router.post("/datasets", response_model=None)
async def upload(
    request: Request,
    state: StateDep,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "table",
    description: Annotated[str, Form()] = "",
    publish_rows: Annotated[bool, Form()] = False,
) -> Response:
    if kind not in _KINDS:
        raise HTTPException(422, f"kind must be one of {', '.join(_KINDS)}")
    data = await file.read()
    rows = None
    if kind == "table":
        try:
            facts = table_preview(data, file.filename or name)
        except ValueError as exc:
            return _datasets_page(request, state, error=str(exc))
        rows = facts["rows"] if publish_rows else None
    try:
        record = state.client.upload_dataset(
            data,
            name=name.strip() or (file.filename or "data"),
            kind=kind,
            description=description,
            rows=rows,
        )
    except ClientError as exc:
        return _datasets_page(request, state, error=f"upload failed: {exc}")
    return RedirectResponse(f"/datasets?uploaded={record['id']}", status_code=303)


def _function(state: StateDep, name: str) -> dict[str, Any]:
    for entry in state.functions():
        if name in (entry.get("name"), entry.get("id")):
            return entry
    raise HTTPException(404, f"no function {name!r}")


@router.get("/propose", response_class=HTMLResponse)
def propose_page(request: Request, state: StateDep, function: str = "") -> HTMLResponse:
    chosen = _function(state, function) if function else None
    mine, partners = (
        known_datasets(state, request.query_params.get("owner", "")) if chosen else ([], [])
    )
    outputs: list[str] = []
    if chosen:
        outputs = [s for s in chosen.get("outputs") or [] if not str(s).endswith("*")]
    return page(
        state,
        request,
        "propose.html",
        tab="propose",
        functions=state.functions(),
        chosen=chosen,
        datasets=mine + partners,
        outputs=outputs,
        n_inputs=max(int((chosen or {}).get("min_inputs") or 1), 2 if chosen else 0),
        disclosure=_DISCLOSURE,
    )


@router.post("/propose", response_model=None)
async def propose(request: Request, state: StateDep) -> Response:
    """Build the proposal from the form: ``input_slot_N``/``input_ds_N`` pairs, ``arg_NAME``,
    ``out_SLOT`` (recipients) with ``joint_SLOT``, ``disclose_CHANNEL``."""
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    function = fields.get("function", "")
    inputs: dict[str, str] = {}
    for key, slot in fields.items():
        if key.startswith("input_slot_") and slot.strip():
            dataset = fields.get("input_ds_" + key.removeprefix("input_slot_"), "").strip()
            if dataset:
                inputs[slot.strip()] = dataset
    arguments = {
        key.removeprefix("arg_"): parse_value(value.strip())
        for key, value in fields.items()
        if key.startswith("arg_") and value.strip()
    }
    outputs: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        if key.startswith("out_") and parse_names(value):
            slot = key.removeprefix("out_")
            field = "joint_owners" if fields.get(f"joint_{slot}") else "recipients"
            outputs[slot] = {field: parse_names(value)}
    disclosure = {
        channel: parse_names(fields.get(f"disclose_{channel}", ""))
        for channel in _DISCLOSURE
        if parse_names(fields.get(f"disclose_{channel}", ""))
    }
    try:
        if not outputs:
            raise ClientError("name at least one output and who receives it")
        task = state.client.propose(
            function,
            inputs=inputs,
            outputs=outputs,
            arguments=arguments,
            disclosure=disclosure,
            description=fields.get("description", ""),
        )
    except ClientError as exc:
        return page(
            state,
            request,
            "error.html",
            status_code=400,
            tab="propose",
            message=f"the proposal was refused: {exc}",
        )
    return RedirectResponse(f"/tasks/{task['id']}", status_code=303)
