"""Relay of the key service's KBS endpoints (``/kbs/v0/...``) for executors on other hosts.

Executors know only the control plane's URL. The control plane forwards their key-release
calls to ``TEEFLOW_KEY_SERVICE_URL`` unchanged (cookie included) and records each release or
refusal in the audit log. It is not trusted with anything here: the executor checks the key
service's own evidence, and the keyring is HPKE-sealed to a key only the attested executor holds.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from teeflow.server.deps import PlatformDep
from teeflow.server.errors import ApiError
from teeflow.tls import InsecureTransportError, client_verify

router = APIRouter(tags=["key release"])

_FORWARDED = ("content-type", "cookie")


def _header_of(body: bytes) -> dict[str, Any]:
    """The public protected header of a Response (measurement, epoch), for the audit entry."""
    try:
        protected = str(json.loads(body)["protected"])
        decoded = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        return {"measurement": str(decoded["measurement"]), "epoch": int(decoded["epoch"])}
    except (ValueError, KeyError, TypeError):
        return {}


@router.api_route("/kbs/v0/{path:path}", methods=["GET", "POST", "PUT"], include_in_schema=False)
async def relay(path: str, request: Request, platform: PlatformDep) -> Response:
    base = platform.settings.key_service_url
    if not base:
        raise ApiError(
            404, "no_key_service", "this platform has no key service; set TEEFLOW_KEY_SERVICE_URL"
        )
    settings = platform.settings
    try:
        verify = client_verify(base, ca_cert=settings.ca_cert, insecure_http=settings.insecure_http)
    except InsecureTransportError as exc:
        raise ApiError(503, "key_service_insecure", str(exc)) from exc
    body = await request.body()
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}

    def forward() -> httpx.Response:
        with httpx.Client(base_url=base, timeout=30.0, verify=verify) as http:
            return http.request(request.method, f"/kbs/v0/{path}", content=body, headers=headers)

    try:
        upstream = await run_in_threadpool(forward)
    except httpx.HTTPError as exc:
        raise ApiError(503, "key_service_unreachable", "the key service does not answer") from exc
    if path.startswith(("resource/", "attest")):
        released = upstream.status_code == 200 and path.startswith("resource/")
        if released or upstream.status_code >= 400:
            details = _header_of(upstream.content) if released else _refusal(upstream)
            platform.store.append_audit(
                actor="key-service",
                action="key.release" if released else "key.release.refused",
                subject=details.get("measurement", ""),
                details=details,
                now=platform.clock(),
            )
    response = Response(
        upstream.content, status_code=upstream.status_code, media_type="application/json"
    )
    if "set-cookie" in upstream.headers:
        response.headers["set-cookie"] = upstream.headers["set-cookie"]
    return response


def _refusal(upstream: httpx.Response) -> dict[str, Any]:
    try:
        data = upstream.json()
        return {"code": str(data.get("code", "")), "reason": str(data.get("message", ""))[:500]}
    except ValueError:
        return {"code": "unknown", "reason": f"HTTP {upstream.status_code}"}
