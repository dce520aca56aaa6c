"""``create_keyservice_app(service)``: the KBS endpoints (Trustee's paths) over a KeyService.

- ``POST /kbs/v0/auth``: Request -> Challenge, sets the ``kbs-session-id`` cookie.
- ``POST /kbs/v0/attest``: Attestation (with the cookie) -> 200, or 401/403 with a reason.
- ``GET /kbs/v0/resource/teeflow/enclave-key/current``: Response (the sealed keyring).
- ``GET /kbs/v0/allow-list``: the signed allow-list in force (404 before the first).
- ``PUT /kbs/v0/allow-list``: a participant-signed allow-list document.
"""

from __future__ import annotations

from typing import Any

from fastapi import Cookie, FastAPI, Response
from fastapi.responses import JSONResponse

from teeflow.enclave.keyring import AllowListError
from teeflow.enclave.keyservice import KeyReleaseRefused, KeyService

__all__ = ["SESSION_COOKIE", "create_keyservice_app"]

SESSION_COOKIE = "kbs-session-id"
_STATUS = {"unauthenticated": 401, "stale-nonce": 401, "bad-request": 400}


def _refused(exc: KeyReleaseRefused) -> JSONResponse:
    return JSONResponse(
        {"code": exc.code, "message": str(exc)}, status_code=_STATUS.get(exc.code, 403)
    )


def create_keyservice_app(service: KeyService) -> FastAPI:
    app = FastAPI(title="teeflow key service", version="1")

    @app.post("/kbs/v0/auth")
    def auth(request: dict[str, Any], response: Response) -> Any:
        try:
            session_id, challenge = service.auth(request)
        except KeyReleaseRefused as exc:
            return _refused(exc)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True)
        return challenge

    @app.post("/kbs/v0/attest")
    def attest(
        attestation: dict[str, Any], kbs_session_id: str = Cookie("", alias=SESSION_COOKIE)
    ) -> Any:
        try:
            service.attest(kbs_session_id, attestation)
        except KeyReleaseRefused as exc:
            return _refused(exc)
        return {}

    @app.get("/kbs/v0/resource/teeflow/enclave-key/current")
    def resource(kbs_session_id: str = Cookie("", alias=SESSION_COOKIE)) -> Any:
        try:
            return service.resource(kbs_session_id)
        except KeyReleaseRefused as exc:
            return _refused(exc)

    @app.post("/kbs/v0/status")
    def status(
        request: dict[str, Any], kbs_session_id: str = Cookie("", alias=SESSION_COOKIE)
    ) -> Any:
        try:
            return service.status(kbs_session_id, request)
        except KeyReleaseRefused as exc:
            return _refused(exc)

    @app.get("/kbs/v0/allow-list")
    def current_allow_list() -> Any:
        document = service.allow_list_document()
        if document is None:
            return JSONResponse(
                {"code": "allow-list", "message": "no allow-list installed yet"}, status_code=404
            )
        return document

    @app.put("/kbs/v0/allow-list")
    def allow_list(document: dict[str, Any]) -> Any:
        try:
            allowed = service.set_allow_list(document)
        except AllowListError as exc:
            return JSONResponse({"code": "allow-list", "message": str(exc)}, status_code=400)
        return {"version": allowed.version}

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
