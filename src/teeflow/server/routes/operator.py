"""``GET /operator``: a read-only status page for the platform's operator, with nothing secret.

Executors (TEE type, measurement, last heartbeat, current lease), queue depth, task counts by
state, the latest key releases (and refusals) of the key service, and the audit head: all of it
metadata the control plane holds anyway. No contract,
member key, ciphertext or wrapped key appears. The control plane has no operator accounts, so
the page is off unless the operator turns it on (``TEEFLOW_OPERATOR_PAGE=true``) on a control
plane whose port only the operator reaches, or behind the operator's own proxy auth.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from teeflow.server.deps import PlatformDep
from teeflow.server.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["operator"])

_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:1rem auto;max-width:1100px;padding:0 1rem}"
    "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccd;padding:.3rem .5rem;"
    "text-align:left}code{word-break:break-all}.sim{color:#fff;background:#c0392b;padding:0 .3rem}"
)


def _ago(then: datetime, now: datetime) -> str:
    return f"{max((now - then).total_seconds(), 0.0):.0f} s ago"


def _key_epoch(key_id: dict[str, Any] | None) -> str:
    """The registered key id's epoch as the executor claimed it (members check the enclave's
    signature on it; the control plane cannot), or "—" for an executor from before key ids."""
    return "—" if not key_id else str(key_id.get("epoch", "—"))


@router.get("/operator", response_class=HTMLResponse, include_in_schema=False)
def operator_page(platform: PlatformDep) -> HTMLResponse:
    if not platform.settings.operator_page:
        raise ApiError(404, "not_found", "the operator page is off (TEEFLOW_OPERATOR_PAGE)")
    e, now, store = html.escape, platform.clock(), platform.store
    counts = store.task_counts()
    leases = store.current_leases()
    head = store.audit_head()
    rows = "".join(
        f"<tr><td><code>{e(x.executor_id)}</code></td><td>{e(x.tee)}"
        + (" <span class=sim>SIMULATED</span>" if x.tee == "sim" else "")
        + f"</td><td><code>{e(x.measurement)}</code></td>"
        f"<td>{e(_key_epoch(x.key_id))}</td><td>{e(_ago(x.last_seen_at, now))}</td>"
        f"<td><code>{e(leases.get(x.executor_id, '—'))}</code></td></tr>"
        for x in sorted(store.list_executors(), key=lambda x: x.registered_at)
    )
    releases = "".join(
        f"<tr><td>{e(r.ts.isoformat(timespec='seconds'))}</td><td>"
        + ("released" if r.action == "key.release" else "<b>refused</b>")
        + f"</td><td><code>{e(r.subject)}</code></td>"
        f"<td>{e(str(r.details.get('epoch', r.details.get('reason', ''))))}</td></tr>"
        for r in store.recent_audit({"key.release", "key.release.refused"}, limit=20)
    )
    states = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in sorted(counts.items()))
    audit = f"entry {head.seq}, hash <code>{e(head.hash)}</code>" if head is not None else "empty"
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>teeflow operator</title>"
        f"<style>{_STYLE}</style><h1>teeflow control plane</h1>"
        f"<p>queue depth <b id=queue>{counts.get('queued', 0)}</b> · running "
        f"<b>{counts.get('running', 0)}</b> · audit head {audit}</p>"
        "<h2>Executors</h2><table id=executors><tr><th>id</th><th>TEE</th><th>measurement</th>"
        f"<th>key epoch</th><th>heartbeat</th><th>current lease</th></tr>{rows}</table>"
        f"<h2>Tasks by state</h2><table id=states>{states}</table>"
        "<h2>Key releases (latest 20)</h2><table id=key-releases><tr><th>time</th>"
        f"<th>outcome</th><th>measurement</th><th>epoch / reason</th></tr>{releases}</table>"
        "</html>"
    )
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": _CSP,
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
        },
    )
