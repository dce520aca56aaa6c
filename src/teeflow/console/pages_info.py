"""Enclave (evidence, measurement, TCB, policy, verdict) and Audit (filters, verification,
export) pages.

The audit log is verified here with ``teeflow.client.audit_verify`` against the member's own
policy (hash chain, each executor registration's evidence, every receipt's enclave signature);
the head the member last verified is the one ``teeflow audit verify`` remembers in the member's
home, so a log rewritten or cut short since then is reported.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from teeflow.client import ClientError
from teeflow.client.audit_verify import AuditReport, verify_audit_log
from teeflow.console.app import StateDep, page
from teeflow.crypto import canonical_json

__all__ = ["router"]

router = APIRouter()


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


def _verified(state: StateDep) -> tuple[list[dict[str, Any]], AuditReport | None, str | None]:
    """The log, its report against the member's policy and remembered head, or why not."""
    events = state.client.audit()
    try:
        policy = state.client.policy()
    except ClientError as exc:
        return events, None, str(exc)
    since = state.client.home.audit_head(state.client.server)
    return events, verify_audit_log(events, policy=policy, since=since), None


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, state: StateDep) -> HTMLResponse:
    events, report, problem = _verified(state)
    shown = _filtered(events, request)
    return page(
        state,
        request,
        "audit.html",
        tab="audit",
        events=shown[::-1][:500],
        total=len(events),
        report=report,
        problem=problem or (str(report.problem) if report and report.problem else None),
        remembered=state.client.home.audit_head(state.client.server),
        filters={k: request.query_params.get(k, "") for k in ("action", "subject", "actor")},
    )


@router.post("/audit/remember", response_model=None)
def remember(state: StateDep) -> Response:
    """Remember the head of a log that verifies (and the enclave keys it attests), as
    ``teeflow audit verify`` does: later logs must still pass through it."""
    _, report, _ = _verified(state)
    if report is not None and report.ok and report.head and report.head_seq:
        now = datetime.now(UTC).isoformat()
        home = state.client.home
        for key in report.attested:
            home.record_attested_enclave(
                public_keys=key.public_keys, tee=key.tee, measurement=key.measurement, at=now
            )
        home.save_audit_head(state.client.server, seq=report.head_seq, hash=report.head, at=now)
    return RedirectResponse("/audit", status_code=303)


@router.get("/audit/export")
def export(state: StateDep) -> Response:
    """The whole log as canonical JSON Lines, as ``teeflow audit export`` writes it, for
    ``teeflow audit verify FILE`` or another auditor."""
    body = "".join(canonical_json(e).decode("utf-8") + "\n" for e in state.client.audit())
    return Response(
        body.encode("utf-8"),
        media_type="application/jsonl",
        headers={"Content-Disposition": 'attachment; filename="teeflow-audit.jsonl"'},
    )
