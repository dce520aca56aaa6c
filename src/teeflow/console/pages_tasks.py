"""To do, Task, progress and Results pages, and the task actions (approve, reject, run, cancel,
withdraw).

Every action goes through ``teeflow.Client``: approving repeats the member's own review, attests
the enclave against the member's policy and only then signs and wraps keys on this machine.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeflow.client import ClientError
from teeflow.client._pins import participant_trust
from teeflow.console._view import TERMINAL, my_outputs, output_kind, task_view, todo_groups
from teeflow.console.app import StateDep, page
from teeflow.console.plots import metric_pictures, metric_summary, training_picture

__all__ = ["router"]

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def todo(request: Request, state: StateDep) -> HTMLResponse:
    tasks = state.client.tasks()
    groups = todo_groups(tasks, state.me, state.opened)
    key_changes = sorted(
        {
            (name, task["id"])
            for task in tasks
            if task["status"] not in TERMINAL
            for name, mark in _trust(state, task).items()
            if mark == "KEYS CHANGED"
        }
    )
    return page(
        state,
        request,
        "todo.html",
        tab="todo",
        groups=groups,
        tasks=tasks[::-1],
        key_changes=key_changes,
    )


def _trust(state: StateDep, task: dict[str, Any]) -> dict[str, str]:
    """How far this member trusts each participant's keys (pinned in its home)."""
    return participant_trust(task["contract"], me=state.me, home=state.client.home)


def _task_page(
    request: Request, state: StateDep, task_id: str, *, error: str | None = None
) -> HTMLResponse:
    task = state.client.task(task_id)
    warnings: list[str] = []
    blocked: str | None = None
    try:
        warnings = state.client.review(task)
    except ClientError as exc:
        blocked = str(exc)
    receipt: dict[str, Any] | None = None
    receipt_problem: str | None = None
    if task.get("receipt"):
        try:
            receipt = state.client.receipt(task_id)["body"]
        except ClientError as exc:
            receipt_problem = str(exc)
    return page(
        state,
        request,
        "task.html",
        status_code=400 if error else 200,
        tab="todo",
        task=task_view(task, state.me, _trust(state, task)),
        warnings=warnings,
        blocked=blocked,
        receipt=receipt,
        receipt_json=json.dumps(receipt, indent=2, sort_keys=True) if receipt else None,
        receipt_problem=receipt_problem,
        error=error,
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, state: StateDep, task_id: str) -> HTMLResponse:
    return _task_page(request, state, task_id)


@router.post("/tasks/{task_id}/{action}", response_model=None)
def task_action(
    request: Request,
    state: StateDep,
    task_id: str,
    action: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    client = state.client
    try:
        if action == "approve":
            client.approve(task_id)
        elif action == "reject":
            client.reject(task_id, reason)
        elif action == "run":
            client.run(task_id)
        elif action == "cancel":
            client.cancel(task_id)
        elif action == "withdraw":
            client.withdraw(task_id)
        else:
            raise HTTPException(404, f"no task action {action!r}")
    except ClientError as exc:
        return _task_page(request, state, task_id, error=f"{action} failed: {exc}")
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)


@router.get("/tasks/{task_id}/progress", response_class=HTMLResponse)
def progress(request: Request, state: StateDep, task_id: str, shown: str = "") -> HTMLResponse:
    """The live part of the Task page (htmx polls it until the task ends). ``shown`` is the
    status the page was drawn with: once the task ends after that, htmx reloads the page, so
    its header, actions and receipt show the end state too."""
    task = state.client.task(task_id)
    events = state.new_events(task_id)
    latest = next((e for e in reversed(events) if e.get("kind") == "progress"), None)
    errors = [e for e in events if e.get("kind") == "error"]
    response = page(
        state,
        request,
        "_progress.html",
        task=task_view(task, state.me),
        latest=latest,
        errors=errors,
        n_events=len(events),
        shown=shown,
    )
    if shown and shown not in TERMINAL and task["status"] in TERMINAL:
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/tasks/{task_id}/training.svg")
def training_svg(state: StateDep, task_id: str) -> Response:
    events = state.events.get(task_id) or state.new_events(task_id)
    picture = training_picture([e for e in events if e.get("kind") == "progress"])
    if picture is None:
        raise HTTPException(404, "no training progress yet")
    return Response(picture.data, media_type=picture.media_type)


def _metrics(state: StateDep, task_id: str, slot: str) -> dict[str, Any] | None:
    """Output ``slot`` as a metrics document, or None when it is not JSON metrics."""
    try:
        value = json.loads(state.output(task_id, slot))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@router.get("/tasks/{task_id}/results", response_class=HTMLResponse)
def results(request: Request, state: StateDep, task_id: str) -> HTMLResponse:
    task = state.client.task(task_id)
    view = task_view(task, state.me)
    mine = set(my_outputs(task, state.me)) if task["status"] == "succeeded" else set()
    registered = (
        {o["slot"]: o.get("dataset_id") for o in state.client.outputs(task_id)}
        if task["status"] == "succeeded"
        else {}
    )
    sections = []
    for output in view["outputs"]:
        slot = output["slot"]
        kind = output_kind(task, slot, state.functions())
        section: dict[str, Any] = {
            **output,
            "kind": kind,
            "readable": slot in mine,
            "dataset_id": registered.get(slot),
        }
        if slot in mine and kind == "metrics":
            metrics = _metrics(state, task_id, slot)
            if metrics is not None:
                section["summary"] = metric_summary(metrics)
                section["pictures"] = [(p.key, p.title) for p in metric_pictures(metrics)]
        sections.append(section)
    return page(state, request, "results.html", tab="todo", task=view, sections=sections)


def _readable(state: StateDep, task_id: str, slot: str) -> None:
    task = state.client.task(task_id)
    if task["status"] != "succeeded" or slot not in my_outputs(task, state.me):
        raise HTTPException(403, f"output {slot!r} is not addressed to you")


@router.get("/tasks/{task_id}/outputs/{slot}/{key}.svg")
def picture(state: StateDep, task_id: str, slot: str, key: str) -> Response:
    _readable(state, task_id, slot)
    metrics = _metrics(state, task_id, slot)
    found = [p for p in metric_pictures(metrics or {}) if p.key == key]
    if not found:
        raise HTTPException(404, f"no {key!r} picture in output {slot!r}")
    return Response(found[0].data, media_type=found[0].media_type)


@router.get("/tasks/{task_id}/outputs/{slot}")
def download(state: StateDep, task_id: str, slot: str) -> Response:
    """The decrypted output, as a file download (decrypted here, checked against the receipt)."""
    _readable(state, task_id, slot)
    data = state.output(task_id, slot)
    state.opened.add((task_id, slot))
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{task_id}-{slot}")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
    )
