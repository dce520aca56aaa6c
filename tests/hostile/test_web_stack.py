"""The control plane's web stack around the routes: routing, authentication, telemetry.

The app keeps every route in one flat table (server/app.py ``add_routes``), resolves a bearer
token in one dependency (server/deps.py ``BearerAuth``) and has FastAPI's OpenTelemetry hooks off.
These tests pin what that must not change: which route answers, the 401/404/405 bodies, the
OpenAPI security scheme, and that nothing is exported whatever the environment says.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import re
from typing import Any

import pytest
from fastapi import APIRouter
from opentelemetry import trace
from starlette.routing import BaseRoute

from teeflow.server import routes

from ._asgi import AppClient
from .conftest import Api, open_api


def _routers() -> dict[str, APIRouter]:
    """Every module of server/routes that defines a router (a new one is checked unlisted)."""
    found = {}
    for info in pkgutil.iter_modules(routes.__path__):
        router = getattr(importlib.import_module(f"{routes.__name__}.{info.name}"), "router", None)
        if isinstance(router, APIRouter):
            found[info.name] = router
    return found


ROUTERS = _routers()
_PARAM = re.compile(r"^\{[^}:]+\}$")


def _owner(route: BaseRoute) -> str:
    found = [name for name, router in ROUTERS.items() if route in router.routes]
    return found[0] if found else "app"


def _may_overlap(a: str, b: str) -> bool:
    """Whether some request path could match both path templates (``{x}`` is one segment,
    ``{x:path}`` any rest)."""
    sa, sb = a.strip("/").split("/"), b.strip("/").split("/")
    for x, y in zip(sa, sb, strict=False):
        if x.endswith(":path}") or y.endswith(":path}"):
            return True  # every segment before it could match both
        if x != y and not _PARAM.match(x) and not _PARAM.match(y):
            return False
    return len(sa) == len(sb)


def test_routes_of_different_routers_never_compete(api: Api) -> None:
    # The app lists the task path's routers first; that is only safe while no request path can
    # match routes of two routers (then the order of routers never decides which route answers).
    routes = [r for r in api.app.router.routes if hasattr(r, "path")]
    assert {_owner(r) for r in routes} >= set(ROUTERS)
    clashes = [
        (a.path, b.path)
        for i, a in enumerate(routes)
        for b in routes[i + 1 :]
        if _owner(a) != _owner(b) and _may_overlap(a.path, b.path)
    ]
    assert clashes == []


def test_the_task_path_is_matched_first(api: Api) -> None:
    paths = [getattr(r, "path", "") for r in api.app.router.routes]
    hot = ["/v1/executor/leases", "/v1/executor/finishes", "/v1/tasks/{task_id}/run"]
    assert max(paths.index(p) for p in hot) < paths.index("/v1/users/me")


def test_overlap_check_sees_an_overlap() -> None:
    assert _may_overlap("/v1/users/me", "/v1/users/{username}")
    assert _may_overlap("/kbs/v0/{path:path}", "/kbs/v0/auth")
    assert not _may_overlap("/v1/tasks/{task_id}", "/v1/tasks/{task_id}/run")
    assert not _may_overlap("/v1/executor/leases", "/v1/executor/lease")


def test_the_literal_route_wins_over_its_parameter_sibling(api: Api) -> None:
    alice = api.member("alice")
    me = alice.http.get("/v1/users/me")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"


def test_wrong_method_is_a_405_in_the_error_catalogue(api: Api) -> None:
    alice = api.member("alice")
    response = alice.http.delete("/v1/tasks")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    # Starlette names the methods of the first route whose path matched.
    assert set(response.headers["allow"].split(", ")) <= {"GET", "POST"}


def test_unknown_path_is_a_404_in_the_error_catalogue(api: Api) -> None:
    response = api.anon.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "authorization",
    ["", "Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "bearer nope", "Token tf_x", "Bearer tf_x y"],
)
@pytest.mark.parametrize("path", ["/v1/users/me", "/v1/tasks"])
def test_anything_but_a_live_bearer_token_is_a_401(api: Api, authorization: str, path: str) -> None:
    client = AppClient(api.app)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        response = client.get(path, headers=headers)
    finally:
        client.close()
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_executor_routes_refuse_a_member_token(api: Api) -> None:
    alice = api.member("alice")
    response = alice.http.post("/v1/executor/leases", json={"max_tasks": 1})
    assert response.status_code == 401
    assert "executor" in response.json()["error"]["message"]


def test_the_schema_still_names_the_bearer_scheme(api: Api) -> None:
    schema = api.app.openapi()
    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer"}
    }
    assert schema["paths"]["/v1/tasks/{task_id}/run"]["post"]["security"] == [{"HTTPBearer": []}]
    assert schema["paths"]["/v1/executor/leases"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/v1/health"]["get"]


def test_requests_do_not_probe_telemetry_providers(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes: list[str] = []
    real = trace.get_tracer_provider

    def counted() -> Any:
        probes.append("tracer")
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    alice = api.member("alice")
    for _ in range(3):
        assert alice.http.get("/v1/users/me").status_code == 200
    assert probes == []


def test_telemetry_is_not_configured_from_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # With FastAPI's defaults these two variables make the app's startup set up OTLP exporters.
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    with open_api(tmp_path / "data") as api:
        sent = asyncio.run(_lifespan(api.app))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not [r for r in caplog.records if "telemetry" in r.getMessage().lower()]


async def _lifespan(app: Any) -> list[str]:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    with_logs = logging.getLogger("fastapi")
    with_logs.setLevel(logging.INFO)
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent
