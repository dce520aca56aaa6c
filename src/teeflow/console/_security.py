"""What keeps other web pages and other local users out of a member's console.

The console listens on 127.0.0.1 only, and a process that can reach the port is still not
trusted: another site in the member's browser, another user on the machine, a DNS-rebinding
page. So, for every request (pure ASGI middleware, static files included):

1. ``Host`` must be this console's own ``127.0.0.1:PORT`` or ``localhost:PORT`` (a rebinding
   page's requests carry its own host name);
2. the launch token must come along: the ``tfc_...`` cookie, or ``?token=`` once, which sets
   that cookie (HttpOnly, SameSite=Strict, Path=/) and redirects to the same URL without it,
   so the token leaves the address bar and history. Compared in constant time. The cookie name
   derives from the token, so two consoles on one host do not overwrite each other's;
3. a state-changing method (anything but GET/HEAD/OPTIONS) needs an ``Origin`` (or, without one,
   a ``Referer``) of this console and the per-launch CSRF token, in the ``X-CSRF-Token`` header
   (htmx) or the ``csrf_token`` form field (:func:`require_csrf`, a route dependency, since
   only the route reads the form);
4. every response carries a strict Content-Security-Policy (no inline script or style, nothing
   from elsewhere, no framing), ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin``
   (with no-referrer, Chromium sends ``Origin: null`` on form posts),
   ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store``.

A refusal is a plain 403 page that says what to do; it never echoes the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import HTTPException, Request

__all__ = ["CSP", "LaunchSecrets", "SecurityMiddleware", "require_csrf"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class LaunchSecrets:
    """The per-launch token (in the URL printed at start) and CSRF secret, and the port."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    port: int = 0

    @property
    def cookie_name(self) -> str:
        return "tfc_" + hashlib.sha256(self.token.encode()).hexdigest()[:16]

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}", f"localhost:{self.port}"})

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}?token={self.token}"


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _origin_ok(headers: dict[str, str], hosts: frozenset[str]) -> bool:
    source = headers.get("origin") or headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return parts.scheme == "http" and parts.netloc in hosts


class SecurityMiddleware:
    """Host, launch-token and origin checks, and security headers on every response."""

    def __init__(self, app: App, *, secrets_: LaunchSecrets) -> None:
        self.app = app
        self.secrets = secrets_

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        hosts = self.secrets.allowed_hosts()
        if headers.get("host") not in hosts:
            await _refuse(send, "this console answers only at 127.0.0.1 or localhost")
            return
        cookies = SimpleCookie()
        cookies.load(headers.get("cookie", ""))
        morsel = cookies.get(self.secrets.cookie_name)
        if not _same(morsel.value if morsel else None, self.secrets.token):
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if scope["method"] in ("GET", "HEAD") and _same(query.get("token"), self.secrets.token):
                await self._accept_token(scope, query, send)
                return
            await _refuse(
                send,
                "open the console with the URL `teeflow console` printed (it holds this "
                "launch's token)",
            )
            return
        if scope["method"] not in _SAFE_METHODS and not _origin_ok(headers, hosts):
            await _refuse(send, "a change must come from a page of this console (origin check)")
            return
        await self.app(scope, receive, _with_headers(send))

    async def _accept_token(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        query.pop("token", None)
        target = scope["path"] + (f"?{urlencode(query)}" if query else "")
        cookie = (
            f"{self.secrets.cookie_name}={self.secrets.token}; HttpOnly; SameSite=Strict; Path=/"
        )
        await _with_headers(send)(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", target.encode()), (b"set-cookie", cookie.encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = [
                (b"content-security-policy", CSP.encode()),
                (b"x-frame-options", b"DENY"),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"same-origin"),
                (b"cache-control", b"no-store"),
                (b"cross-origin-opener-policy", b"same-origin"),
                (b"cross-origin-resource-policy", b"same-origin"),
            ]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _refuse(send: Send, reason: str) -> None:
    body = (
        "<!doctype html><meta charset=utf-8><title>Refused</title>"
        f"<h1>403 refused</h1><p>{reason}.</p>"
    ).encode()
    await _with_headers(send)(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def require_csrf(request: Request) -> None:
    """Route dependency: a state-changing request carries this launch's CSRF token."""
    if request.method in _SAFE_METHODS:
        return
    secrets_: LaunchSecrets = request.app.state.launch
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()  # cached on the request; the route reads the same form
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not _same(sent, secrets_.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
