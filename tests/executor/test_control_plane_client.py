"""The executor's HTTP client keeps no cookies: the control plane authenticates executors by
bearer token, so a ``Set-Cookie`` is neither parsed nor sent back (executor/worker.py)."""

from __future__ import annotations

import httpx

from teeflow.executor.worker import control_plane_client


def test_a_set_cookie_is_not_kept_nor_sent_back() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    client = control_plane_client(
        "http://control-plane", True, transport=httpx.MockTransport(answer)
    )
    client.post("/v1/executor/leases")
    client.post("/v1/executor/leases")

    assert len(client.cookies) == 0
    assert [request.headers.get("cookie") for request in sent] == [None, None]


def test_a_plain_client_would_send_the_cookie_back() -> None:
    """The control for the test above: httpx's default client does keep it."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, json={})

    client = httpx.Client(base_url="http://control-plane", transport=httpx.MockTransport(answer))
    client.post("/v1/executor/leases")
    client.post("/v1/executor/leases")

    assert sent[1].headers.get("cookie") == "session=abc"
