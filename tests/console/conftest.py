"""A console launch (uvicorn on 127.0.0.1, as ``teeflow console`` runs it) over a stub control
plane (httpx.MockTransport): enough for the security layer, which refuses before any page
talks to the control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.console.server import ConsoleServer
from teeflow.crypto import PrivateKey, SigningKey


def _control_plane(request: httpx.Request) -> httpx.Response:
    if request.url.path in ("/v1/tasks", "/v1/datasets", "/v1/functions", "/v1/audit"):
        return httpx.Response(200, json=[])
    return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such thing"}})


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleServer]:
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    client = Client(
        "http://control-plane.invalid",
        keys=keys,
        home=MemberHome(tmp_path / "home"),
        username="alice",
        transport=httpx.MockTransport(_control_plane),
    )
    server = ConsoleServer(client).start()
    yield server
    server.stop()
    client.close()


@pytest.fixture
def browser(console: ConsoleServer) -> Iterator[httpx.Client]:
    """An HTTP client at the console's own address, without the launch cookie yet."""
    with httpx.Client(base_url=console.base, follow_redirects=False) as http:
        yield http
