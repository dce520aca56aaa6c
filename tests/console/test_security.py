"""The console's gate: launch token, Host, origin and CSRF checks, and the security headers.

Each test is one way another web page, another local user or a rebinding DNS name could try to
reach the member's keys through the console."""

from __future__ import annotations

import httpx

from teeflow.console import CSP, LaunchSecrets
from teeflow.console.server import ConsoleServer


def _signed_in(browser: httpx.Client, launch: LaunchSecrets) -> httpx.Client:
    first = browser.get(f"/?token={launch.token}")
    assert first.status_code == 303
    return browser


def test_every_path_without_the_launch_token_is_refused(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch = console.launch
    for path in ("/", "/datasets", "/audit/export", "/static/htmx.min.js", "/tasks/x/outputs/y"):
        response = browser.get(path)
        assert response.status_code == 403, path
        assert "teeflow console" in response.text and launch.token not in response.text
    assert browser.get("/?token=wrong").status_code == 403
    assert browser.post("/propose", data={"function": "echo"}).status_code == 403


def test_token_in_the_url_sets_a_strict_cookie_and_leaves_the_url(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch = console.launch

    response = browser.get(f"/datasets?token={launch.token}&x=1")

    assert response.status_code == 303
    assert response.headers["location"] == "/datasets?x=1"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{launch.cookie_name}={launch.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert browser.get("/").status_code == 200  # the cookie now stands for the token


def test_another_host_name_is_refused_even_with_the_token(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch, port = console.launch, console.launch.port
    _signed_in(browser, launch)

    rebinding = browser.get("/", headers={"Host": f"evil.example:{port}"})
    other_port = browser.get("/", headers={"Host": "127.0.0.1:1"})

    assert rebinding.status_code == 403 and other_port.status_code == 403
    assert browser.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert launch.token not in rebinding.text


def test_a_change_without_the_csrf_token_is_refused(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch = console.launch
    origin = console.base
    _signed_in(browser, launch)
    headers = {"Origin": origin}

    missing = browser.post("/audit/remember", headers=headers)
    wrong = browser.post("/audit/remember", headers=headers, data={"csrf_token": "guess"})
    wrong_header = browser.post("/tasks/t1/approve", headers={**headers, "X-CSRF-Token": "x"})
    form_ok = browser.post("/audit/remember", headers=headers, data={"csrf_token": launch.csrf})
    header_ok = browser.post("/audit/remember", headers={**headers, "X-CSRF-Token": launch.csrf})

    assert (missing.status_code, wrong.status_code, wrong_header.status_code) == (403, 403, 403)
    assert "CSRF" in missing.text
    assert form_ok.status_code == 303 and header_ok.status_code == 303


def test_a_change_from_another_origin_is_refused_even_with_both_tokens(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch = console.launch
    origin = console.base
    _signed_in(browser, launch)
    data = {"csrf_token": launch.csrf}

    foreign = browser.post("/audit/remember", headers={"Origin": "http://evil.example"}, data=data)
    none = browser.post("/audit/remember", data=data)
    by_referer = browser.post("/audit/remember", headers={"Referer": f"{origin}/audit"}, data=data)

    assert foreign.status_code == 403 and none.status_code == 403
    assert by_referer.status_code == 303


def test_every_response_carries_the_strict_policy(
    browser: httpx.Client, console: ConsoleServer
) -> None:
    launch = console.launch
    refused = browser.get("/")
    _signed_in(browser, launch)
    page = browser.get("/")
    static = browser.get("/static/htmx.min.js")

    for response in (refused, page, static):
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "<script>" not in page.text and " style=" not in page.text and "hx-on" not in page.text
    assert f'"X-CSRF-Token": "{launch.csrf}"' in page.text


def test_two_launches_use_different_cookies(console: ConsoleServer) -> None:
    other = LaunchSecrets(port=console.launch.port)

    assert other.cookie_name != console.launch.cookie_name
    assert other.token != console.launch.token and other.csrf != console.launch.csrf
