"""The member's client keeps no cookies: the control plane authenticates members by bearer
token, so a ``Set-Cookie`` is neither parsed nor sent back (teeflow/tls/_http.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from teeflow.client import Client, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey


def _two_calls(call: Callable[[httpx.MockTransport], None]) -> list[httpx.Request]:
    """The requests of ``call`` against a control plane that sets a cookie on every answer."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json=[])

    call(httpx.MockTransport(answer))
    assert len(sent) == 2
    return sent


def _member_lists_tasks_twice(transport: httpx.MockTransport) -> None:
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    with Client("http://control-plane", keys=keys, token="tf_t", transport=transport) as client:
        client.tasks()
        client.tasks()


def _httpx_gets_twice(transport: httpx.MockTransport) -> None:
    with httpx.Client(base_url="http://control-plane", transport=transport) as client:
        client.get("/v1/tasks")
        client.get("/v1/tasks")


def test_a_set_cookie_is_not_sent_back() -> None:
    sent = _two_calls(_member_lists_tasks_twice)

    assert [request.headers.get("cookie") for request in sent] == [None, None]
    assert [request.headers["authorization"] for request in sent] == ["Bearer tf_t"] * 2


def test_a_plain_httpx_client_would_send_it_back() -> None:
    """The control for the test above: httpx's default client keeps the cookie."""
    sent = _two_calls(_httpx_gets_twice)

    assert sent[1].headers.get("cookie") == "session=abc"
