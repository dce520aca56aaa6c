"""The executor's HTTP client keeps no cookies: the control plane authenticates executors by
bearer token, so a ``Set-Cookie`` is neither parsed nor sent back (executor/worker.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from teeflow.executor.worker import control_plane_client


def _setting_a_cookie(sent: list[httpx.Request]) -> httpx.MockTransport:
    """A control plane that answers every request with a ``Set-Cookie`` and notes the request."""

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    return httpx.MockTransport(answer)


def _two_leases(make: Callable[[httpx.MockTransport], httpx.Client]) -> list[httpx.Request]:
    sent: list[httpx.Request] = []
    client = make(_setting_a_cookie(sent))
    client.post("/v1/executor/leases")
    client.post("/v1/executor/leases")
    assert len(sent) == 2
    return sent


def test_a_set_cookie_is_not_sent_back() -> None:
    sent = _two_leases(lambda t: control_plane_client("http://control-plane", True, transport=t))

    assert [request.headers.get("cookie") for request in sent] == [None, None]


def test_a_plain_httpx_client_would_send_it_back() -> None:
    """The control for the test above: httpx's default client keeps the cookie."""
    sent = _two_leases(lambda t: httpx.Client(base_url="http://control-plane", transport=t))

    assert sent[1].headers.get("cookie") == "session=abc"
