"""A fault-injecting HTTP proxy on loopback, between executors and the control plane.

It forwards each request whole (the executor's bodies are small) and lets a test answer chosen
requests itself: ``"503"`` (a gateway that lost its upstream), ``"drop"`` (the connection closes
with no response) or ``"hold"`` (no answer until ``FaultPlan.release``, then dropped: the caller
is stuck at a known point). A dropped, held or refused request never reaches the control plane.
With ``tls`` it terminates HTTPS (as a gateway would) and talks HTTPS to an upstream it verifies.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

Fault = Literal["503", "drop", "hold"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultPlan:
    """Fail the ``nth`` (1-based) request matching ``method`` and ``path`` with ``fault``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[str, re.Pattern[str], int, Fault]] = []
        self._seen: dict[int, int] = {}
        self.injected: list[str] = []
        self.released = threading.Event()

    def release(self) -> None:
        """Let every held request go (as dropped)."""
        self.released.set()

    def fail(self, method: str, path: str, *, nth: int, fault: Fault) -> None:
        self._rules.append((method, re.compile(path), nth, fault))

    def decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for index, (rule_method, pattern, nth, fault) in enumerate(self._rules):
                if method == rule_method and pattern.search(path):
                    self._seen[index] = self._seen.get(index, 0) + 1
                    if self._seen[index] == nth:
                        self.injected.append(f"{fault} {method} {path}")
                        return fault
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    upstream: tuple[str, int]
    plan: FaultPlan
    tls: ssl.SSLContext | None = None
    upstream_tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake runs in the handler's thread (setup)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hung up (an executor stopping mid long-poll) is not the proxy's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.server.plan.decide(self.command, self.path)
        if fault == "hold":
            self.server.plan.released.wait()
        if fault in ("drop", "hold"):
            self.close_connection = True
            return
        if fault == "503":
            self._reply(503, [("Content-Type", "text/plain")], b"upstream unavailable")
            return
        upstream: http.client.HTTPConnection
        if self.server.upstream_tls is not None:
            upstream = http.client.HTTPSConnection(
                *self.server.upstream, timeout=120, context=self.server.upstream_tls
            )
        else:
            upstream = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            self._reply(response.status, kept, data)
        finally:
            upstream.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def fault_proxy(
    upstream_port: int,
    plan: FaultPlan,
    *,
    listen: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
    upstream_ca: Path | None = None,
) -> Iterator[str]:
    """Run the proxy in a thread on ``listen``; yields its URL. ``tls`` (certificate, key)
    makes it serve HTTPS; ``upstream_ca`` makes it dial the upstream (127.0.0.1) over HTTPS,
    verified against that CA."""
    server = _Server((listen, 0), _Handler)
    server.upstream = ("127.0.0.1", upstream_port)
    server.plan = plan
    if tls is not None:
        server.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.tls.load_cert_chain(*tls)
    if upstream_ca is not None:
        server.upstream_tls = ssl.create_default_context(cafile=str(upstream_ca))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://{listen}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
