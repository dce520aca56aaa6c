"""One WebSocket to the control plane, over the same URL and TLS check as its HTTP client."""

from __future__ import annotations

import ssl

import httpx
from websockets.sync.client import ClientConnection, connect

__all__ = ["ClientConnection", "connect_websocket"]


def connect_websocket(
    http: httpx.Client, path: str, tls: ssl.SSLContext | bool, *, timeout: float = 10.0
) -> ClientConnection:
    """A WebSocket to ``path`` of ``http``'s server (``ws://`` for ``http://``, ``wss://`` for
    ``https://``), sending ``http``'s Authorization header and checking the server's certificate
    as ``tls`` says (an SSLContext, True: the system's CAs, False: no check; as httpx's
    ``verify``). Raises OSError or websockets.exceptions.WebSocketException if it cannot connect;
    frames up to 64 MiB. The caller closes it (``close()`` or ``with``)."""
    url = http.base_url.join(path)
    secure = url.scheme == "https"
    context: ssl.SSLContext | None = None
    if secure:
        if isinstance(tls, ssl.SSLContext):
            context = tls
        else:
            context = ssl.create_default_context()
            if not tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
    headers = {}
    if "Authorization" in http.headers:
        headers["Authorization"] = http.headers["Authorization"]
    connection = connect(
        str(url.copy_with(scheme="wss" if secure else "ws")),
        additional_headers=headers,
        ssl=context,
        open_timeout=timeout,
        max_size=64 << 20,
        compression=None,
    )
    # Held across calls (and closed by its owner): what ``with connect(...)`` would enter.
    return connection.__enter__()
