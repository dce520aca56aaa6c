"""Enclave (evidence, measurement, TCB, policy, verdict) and Audit (filters, verification,
export) pages.

The audit log is verified here with ``teeflow.client.audit_verify`` (hash chain and every
receipt's enclave signature); the head the member last verified is remembered in the member's
home, so a log rewritten or cut short since then is reported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeflow.client import ClientError
from teeflow.client.audit_verify import verify_audit_log
from teeflow.client.keyring import write_private_file
from teeflow.console.app import StateDep, page

__all__ = ["router"]

router = APIRouter()

_HEAD_FILE = "console-audit-head.json"


def _policy_rows(state: StateDep) -> tuple[list[tuple[str, str]], str | None]:
    try:
        policy = state.client.policy()
    except ClientError as exc:
        return [], str(exc)
    rows = []
    for item in dataclasses.fields(policy):
        value = getattr(policy, item.name)
        if isinstance(value, frozenset):
            value = ", ".join(sorted(str(v) for v in value)) or "(none)"
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        rows.append((item.name, str(value)))
    return rows, None


@router.get("/enclave", response_class=HTMLResponse)
def enclave(request: Request, state: StateDep) -> HTMLResponse:
    published: dict[str, Any] | None = None
    attested: dict[str, Any] | None = None
    verdict: str | None = None
    try:
        published = state.client.enclave()
        attested = state.client.attest()
    except ClientError as exc:
        verdict = str(exc)
    policy, policy_problem = _policy_rows(state)
    evidence = json.dumps((published or {}).get("evidence"), indent=2, sort_keys=True)
    return page(
        state,
        request,
        "enclave.html",
        tab="enclave",
        published=published,
        attested=attested,
        verdict=verdict,
        policy=policy,
        policy_problem=policy_problem,
        evidence=evidence[:20000],
    )


def _remembered_head(state: StateDep) -> dict[str, Any] | None:
    path: Path = state.client.home.root / _HEAD_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _filtered(events: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    action, subject, actor = (
        request.query_params.get(k, "").strip() for k in ("action", "subject", "actor")
    )
    return [
        e
        for e in events
        if (not action or action in str(e.get("action")))
        and (not subject or subject == str(e.get("subject")))
        and (not actor or actor == str(e.get("actor")))
    ]


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, state: StateDep) -> HTMLResponse:
    events = state.client.audit()
    remembered = _remembered_head(state)
    report = verify_audit_log(events)
    cut_short = None
    if report.ok and remembered is not None:
        # The log must still pass through the head remembered at its seq.
        at = [e for e in events if int(e["seq"]) == int(remembered["seq"])]
        if not at or at[0]["hash"] != remembered["hash"]:
            cut_short = (
                f"the log no longer holds the head you verified before (entry "
                f"{remembered['seq']}): it was rewritten or cut short"
            )
    shown = _filtered(events, request)
    return page(
        state,
        request,
        "audit.html",
        tab="audit",
        events=shown[::-1][:500],
        total=len(events),
        report=report,
        remembered=remembered,
        cut_short=cut_short,
        filters={k: request.query_params.get(k, "") for k in ("action", "subject", "actor")},
    )


@router.post("/audit/remember", response_model=None)
def remember(state: StateDep) -> Response:
    """Remember the head of a log that verifies, to check later logs against it."""
    events = state.client.audit()
    report = verify_audit_log(events)
    if report.ok and events:
        head = {"seq": int(events[-1]["seq"]), "hash": str(events[-1]["hash"])}
        write_private_file(
            state.client.home.root / _HEAD_FILE, json.dumps(head).encode(), overwrite=True
        )
    return RedirectResponse("/audit", status_code=303)


@router.get("/audit/export")
def export(state: StateDep) -> Response:
    """The whole log as JSON, for ``teeflow audit verify`` or another auditor."""
    body = json.dumps(state.client.audit(), indent=2, sort_keys=True).encode()
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="teeflow-audit.json"'},
    )
