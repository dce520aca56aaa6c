"""An HTTP client for the control plane's API: keep-alive, and no cookie jar.

The control plane authenticates members and executors by bearer token (``Authorization``) and
sets no cookies for them (the member's browser console is a separate app on the member's machine,
with a cookie of its own; the key service's session cookie is sent explicitly, by
executor/keyrelease.py's own client). httpx reads every response for ``Set-Cookie`` through
``http.cookiejar`` all the same, building a ``urllib`` request and an ``email`` message per
response, about a third of httpx's own CPU per request; a client that keeps no cookies skips it,
and sends none back.
"""

from __future__ import annotations

import ssl

import httpx

__all__ = ["control_plane_http"]


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps none (and so never sends one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def control_plane_http(
    server: str,
    *,
    verify: ssl.SSLContext | bool,
    timeout: httpx.Timeout,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for ``server`` (its base URL) that keeps no cookies; ``verify``
    (:func:`client_verify`'s answer) and ``timeout`` as httpx takes them, ``transport`` httpx's
    own (tests inject one)."""
    client = httpx.Client(base_url=server, timeout=timeout, transport=transport, verify=verify)
    # httpx's ``cookies`` setter copies into a plain ``Cookies``: the store itself is replaced
    # (tests/client/test_http.py and tests/executor/test_control_plane_client.py fail if a
    # later httpx stops using it).
    client._cookies = _NoCookies()
    return client
